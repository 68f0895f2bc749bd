"""A turn's items rendered as Responses events and bodies, in OpenAI's shapes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from contracts import ToolCallDelta, TurnCompleted, TurnDelta, TurnFailed, TurnUsage
from contracts.events import FinishReason
from services.gateway.http.errors import ApiError
from services.gateway.responses.relay import ResponseHead, collect_response, stream_response
from services.gateway.turns.items import Heartbeat, Reset, TurnItem, TurnRef, TurnTranscript

IDS: dict[str, Any] = {"correlation_id": "c", "conversation_id": "t1", "turn_id": "t1"}
SETTINGS = {"created_at": 1, "model": "m", "tools": [], "tool_choice": "auto", "metadata": {},
            "parallel_tool_calls": True, "instructions": None}  # fmt: skip
HEAD = ResponseHead("resp_t1", "t1", SETTINGS)
EVENTS: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)


class Feed:
    def __init__(self, *items: TurnItem) -> None:
        self._items = items
        self.closed = False

    @property
    def turn(self) -> TurnRef:
        return TurnRef("t1", "t1", "m", "c")

    async def __aiter__(self) -> AsyncIterator[TurnItem]:
        for item in self._items:
            yield item

    def close(self) -> None:
        self.closed = True


class Keeper:
    def __init__(self) -> None:
        self.kept: list[tuple[str, str]] = []

    async def keep(self, final: TurnCompleted | TurnFailed, transcript: TurnTranscript) -> None:
        self.kept.append((final.type, transcript.text))


def delta(seq: int, text: str = "", *calls: ToolCallDelta) -> TurnDelta:
    return TurnDelta(**IDS, seq=seq, text=text, tool_calls=calls)


def ending(seq: int, finish: FinishReason = "stop") -> list[TurnItem]:
    usage = TurnUsage(**IDS, seq=seq, model="m", provider_model="m", input_tokens=5,
                      output_tokens=2)  # fmt: skip
    return [usage, TurnCompleted(**IDS, seq=seq + 1, model="m", finish_reason=finish)]


async def streamed(feed: Feed, keeper: Keeper | None = None) -> list[dict[str, Any]]:
    frames = b"".join([f async for f in stream_response(HEAD, feed, keeper)]).decode()
    events = []
    for block in frames.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "data" in lines:
            event = json.loads(lines["data"])
            assert lines["event"] == event["type"]
            EVENTS.validate_python(event)  # the SDK's own types, strictly
            events.append(event)
    return events


async def test_a_text_answer_streams_openais_event_sequence_numbered_from_zero() -> None:
    keeper = Keeper()
    feed = Feed(delta(1, "Hel"), Heartbeat(), delta(2, "lo"), *ending(3))
    events = await streamed(feed, keeper)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[6]["text"] == "Hello"
    final = Response.model_validate(events[-1]["response"])
    assert (final.id, final.status, final.output_text) == ("resp_t1", "completed", "Hello")
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (
        5,
        2,
        7,
    )
    assert keeper.kept == [("turn.completed", "Hello")]
    assert feed.closed


async def test_interleaved_calls_stream_as_function_call_items_with_their_arguments() -> None:
    pieces = [
        ToolCallDelta(index=0, id="call_w", name="get_weather", arguments=""),
        ToolCallDelta(index=1, id="call_t", name="get_time", arguments='{"zone": "UTC"}'),
        ToolCallDelta(index=0, arguments='{"city": "Paris"}'),
    ]
    events = await streamed(
        Feed(*(delta(n + 1, "", p) for n, p in enumerate(pieces)), *ending(4, "tool_calls"))
    )
    kinds = [e["type"] for e in events]
    assert kinds.count("response.output_item.added") == 2
    assert kinds.count("response.function_call_arguments.delta") == 2
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [(e["output_index"], e["arguments"]) for e in done] == [
        (0, '{"city": "Paris"}'),
        (1, '{"zone": "UTC"}'),
    ]
    final = Response.model_validate(events[-1]["response"])
    assert [(i.type, getattr(i, "call_id", None)) for i in final.output] == [
        ("function_call", "call_w"),
        ("function_call", "call_t"),
    ]


async def test_an_answer_cut_at_max_output_tokens_ends_incomplete() -> None:
    events = await streamed(Feed(delta(1, "Hi"), *ending(2, "length")))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-1]["response"]["output"][0]["status"] == "incomplete"


async def test_a_failed_turn_ends_with_response_failed_naming_the_code() -> None:
    keeper = Keeper()
    failed = TurnFailed(**IDS, seq=2, code="rate_limited", message="Slow down.", retryable=True)
    events = await streamed(Feed(delta(1, "Hi"), failed), keeper)
    assert events[-1]["type"] == "response.failed"
    error = events[-1]["response"]["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert "rate_limited" in error["message"]
    assert keeper.kept == [("turn.failed", "Hi")]


async def test_a_restart_after_text_was_sent_fails_the_response_instead_of_garbling_it() -> None:
    events = await streamed(Feed(delta(1, "Hi"), Reset(2), delta(1, "Other"), *ending(2)))
    assert events[-1]["type"] == "response.failed"
    assert all(e.get("delta") != "Other" for e in events)


async def test_a_restart_before_any_text_is_invisible() -> None:
    events = await streamed(Feed(Reset(2), delta(1, "Hi"), *ending(2)))
    assert events[-1]["type"] == "response.completed"


async def test_a_collected_response_is_the_whole_answer_with_text_then_calls() -> None:
    call = ToolCallDelta(index=0, id="call_w", name="get_weather", arguments="{}")
    feed = Feed(delta(1, "Let me see."), delta(2, "", call), *ending(3, "tool_calls"))
    body = await collect_response(HEAD, feed, None)
    response = Response.model_validate(body)
    assert [i.type for i in response.output] == ["message", "function_call"]
    assert response.output_text == "Let me see."
    assert feed.closed


async def test_a_collected_failure_is_the_http_error_of_its_code() -> None:
    failed = TurnFailed(**IDS, seq=1, code="timeout", message="Too slow.", retryable=True)
    with pytest.raises(ApiError) as raised:
        await collect_response(HEAD, Feed(failed), None)
    assert (raised.value.status, raised.value.code) == (504, "timeout")
