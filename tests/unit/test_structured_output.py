"""Structured output at the boundary: the check, the retry decision, what the turn publishes.

Fakes only at the generator's two Protocol seams (ModelProvider, EventSink).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk

from contracts import (
    ChatMessage,
    ChatRequest,
    GenerationParams,
    ResponseFormat,
    TurnCompleted,
    TurnDelta,
    TurnFailed,
    TurnUsage,
    utc_now,
)
from services.gateway.conversations.sse import format_item
from services.gateway.http.errors import turn_failure_status
from services.gateway.openai.wire import ChunkWriter, output_mark
from services.generator.metrics import STRUCTURED_OUTPUTS
from services.generator.ports import StreamEnd, TextChunk, TurnEventOut
from services.generator.service import generate_turn
from services.generator.structured import output_error, with_feedback

CITY: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city"],
    "additionalProperties": False,
}
SCHEMA = ResponseFormat(type="json_schema", name="city", json_schema=CITY, strict=True)
JSON_OBJECT = ResponseFormat(type="json_object")


class Answers:
    """Each call streams the next answer, in two chunks, with exact usage."""

    def __init__(self, *answers: str, finish: str = "stop") -> None:
        self.answers = list(answers)
        self.finish = finish
        self.requests: list[ChatRequest] = []

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        self.requests.append(request)
        return self._stream(self.answers.pop(0))

    async def _stream(self, text: str) -> AsyncIterator[TextChunk | StreamEnd]:
        half = len(text) // 2
        yield TextChunk(text[:half])
        yield TextChunk(text[half:])
        yield StreamEnd(self.finish, "up-model", 10, 4)  # type: ignore[arg-type]


class Sink:
    def __init__(self) -> None:
        self.events: list[TurnEventOut] = []

    async def emit(self, request: ChatRequest, event: TurnEventOut) -> None:
        self.events.append(event)

    async def emit_final(self, request: ChatRequest, event: TurnEventOut) -> None:
        self.events.append(event)

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TurnDelta))

    def one(self, kind: type[TurnEventOut]) -> Any:
        found = [e for e in self.events if isinstance(e, kind)]
        assert len(found) == 1, [type(e).__name__ for e in self.events]
        return found[0]


def a_request(
    response_format: ResponseFormat | None = SCHEMA, buffered: bool = True
) -> ChatRequest:
    return ChatRequest(
        correlation_id="corr",
        gateway_id="gw",
        conversation_id="conv",
        turn_id="turn",
        model="public-name",
        messages=(ChatMessage(role="user", content="A city, as JSON"),),
        params=GenerationParams(response_format=response_format),
        buffered=buffered,
        deadline_at=utc_now() + timedelta(seconds=60),
    )


def counted(outcome: str) -> float:
    return float(STRUCTURED_OUTPUTS.labels("public-name", outcome)._value.get())


# The check


def test_an_object_that_fits_the_schema_passes() -> None:
    assert output_error(SCHEMA, ' {"city": "Paris", "population": 2100000}\n') is None


def test_text_that_is_not_json_is_told_where_it_broke() -> None:
    message = output_error(SCHEMA, "Paris is the capital")
    assert message is not None
    assert message.startswith("The answer is not JSON: Expecting value: line 1 column 1")


def test_the_validators_message_names_the_place_that_does_not_fit() -> None:
    message = output_error(SCHEMA, '{"city": "Paris", "population": "many"}')
    assert message == (
        "The answer does not fit the schema at $.population: 'many' is not of type 'integer'"
    )
    assert output_error(SCHEMA, '{"population": 3}') == (
        "The answer does not fit the schema at $: 'city' is a required property"
    )


def test_json_object_asks_for_an_object_not_any_json() -> None:
    assert output_error(JSON_OBJECT, '{"anything": [1, 2]}') is None
    assert output_error(JSON_OBJECT, "[1, 2]") == (
        "The answer is JSON but not an object (it is an array)."
    )


def test_a_long_message_is_cut() -> None:
    message = output_error(SCHEMA, '{"city": "' + "x" * 5000 + '", "population": "y"}')
    assert message is not None
    assert len(message) <= 500


def test_the_retry_carries_the_invalid_answer_and_the_feedback() -> None:
    retry = with_feedback(a_request(), "not json", "The answer is not JSON: ...")
    assert [m.role for m in retry.messages] == ["user", "assistant", "user"]
    assert retry.messages[1].content == "not json"
    assert "The answer is not JSON: ..." in retry.messages[2].content
    assert retry.turn_id == "turn"
    assert retry.params == a_request().params


# The turn


async def test_a_buffered_answer_that_fails_is_asked_again_and_only_the_second_is_published() -> (
    None
):
    sink, provider = Sink(), Answers("Paris!", '{"city": "Paris"}')
    retried, valid = counted("retried"), counted("valid")
    await generate_turn(a_request(), 1, provider, sink)

    assert len(provider.requests) == 2
    feedback = provider.requests[1].messages
    assert feedback[1] == ChatMessage(role="assistant", content="Paris!")
    assert "The answer is not JSON" in feedback[2].content
    assert sink.text == '{"city": "Paris"}'
    usage = sink.one(TurnUsage)
    assert (usage.input_tokens, usage.output_tokens, usage.purpose) == (20, 8, "structured_retry")
    done = sink.one(TurnCompleted)
    assert (done.output_valid, done.output_error, done.finish_reason) == (True, None, "stop")
    assert [e.seq for e in sink.events] == list(range(1, len(sink.events) + 1))
    assert (counted("retried"), counted("valid")) == (retried + 1, valid + 1)


async def test_a_buffered_answer_that_fails_twice_ends_invalid_output_without_its_text() -> None:
    sink, provider = Sink(), Answers("Paris!", '{"town": "Paris"}')
    invalid = counted("invalid")
    await generate_turn(a_request(), 1, provider, sink)

    assert not [e for e in sink.events if isinstance(e, TurnDelta)]
    failed = sink.one(TurnFailed)
    assert failed.code == "invalid_output"
    assert "asked 2 times" in failed.message
    assert "'city' is a required property" in failed.message
    assert sink.one(TurnUsage).output_tokens == 8
    assert counted("invalid") == invalid + 1


async def test_a_valid_first_answer_is_published_once_and_metered_as_chat() -> None:
    sink, provider = Sink(), Answers('{"city": "Oslo"}')
    await generate_turn(a_request(), 1, provider, sink)

    assert len(provider.requests) == 1
    assert sink.text == '{"city": "Oslo"}'
    assert sink.one(TurnUsage).purpose == "chat"
    assert sink.one(TurnCompleted).output_valid is True


async def test_retries_zero_asks_once_and_still_refuses_an_invalid_buffered_answer() -> None:
    sink, provider = Sink(), Answers("Paris!")
    await generate_turn(a_request(), 1, provider, sink, structured_retries=0)

    assert len(provider.requests) == 1
    failed = sink.one(TurnFailed)
    assert failed.code == "invalid_output"
    assert "asked once" in failed.message


async def test_a_streamed_answer_is_passed_through_as_it_comes_and_marked_at_its_end() -> None:
    sink, provider = Sink(), Answers("Paris!")
    await generate_turn(a_request(buffered=False), 1, provider, sink)

    assert len(provider.requests) == 1
    kinds = [type(e).__name__ for e in sink.events]
    assert kinds == ["TurnDelta", "TurnDelta", "TurnUsage", "TurnCompleted"]
    done = sink.one(TurnCompleted)
    assert done.output_valid is False
    assert done.output_error is not None
    assert done.output_error.startswith("The answer is not JSON")


async def test_an_answer_cut_at_max_tokens_is_not_asked_again_but_marked() -> None:
    sink, provider = Sink(), Answers('{"city": "Par', finish="length")
    await generate_turn(a_request(), 1, provider, sink)

    assert len(provider.requests) == 1
    assert sink.text == '{"city": "Par'
    done = sink.one(TurnCompleted)
    assert (done.finish_reason, done.output_valid) == ("length", False)


async def test_without_a_response_format_nothing_is_checked_or_marked() -> None:
    sink, provider = Sink(), Answers("just words")
    await generate_turn(a_request(response_format=None), 1, provider, sink)

    done = sink.one(TurnCompleted)
    assert done.output_valid is None
    assert "output_valid" not in done.model_dump_json()
    assert sink.text == "just words"


async def test_a_buffered_answer_is_not_known_as_buffered_unless_the_gateway_says_so() -> None:
    request = ChatRequest.model_validate_json(a_request(buffered=False).model_dump_json())
    assert request.buffered is False
    assert "buffered" not in a_request(buffered=False).model_dump_json()


async def test_no_model_text_or_validator_message_reaches_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = '{"town": "Atlantis-7731"}'
    await generate_turn(a_request(), 1, Answers(secret, secret), Sink())

    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "asked again" in logged
    assert "Atlantis" not in logged
    assert "required property" not in logged


# How the gateway tells it


def a_completion(**marks: Any) -> TurnCompleted:
    return TurnCompleted(
        correlation_id="corr",
        conversation_id="conv",
        turn_id="turn",
        seq=4,
        model="public-name",
        finish_reason="stop",
        **marks,
    )


def test_the_finish_chunk_carries_the_mark_and_the_sdk_keeps_it() -> None:
    done = a_completion(output_valid=False, output_error="The answer is not JSON: ...")
    frame = ChunkWriter("chatcmpl-1", "public-name", True).finish("stop", mark=output_mark(done))
    chunk = ChatCompletionChunk.model_validate(json.loads(frame.removeprefix(b"data: ")))
    assert chunk.choices[0].finish_reason == "stop"
    assert (chunk.model_extra or {})["tokenbus"] == {
        "output_valid": False,
        "output_error": "The answer is not JSON: ...",
    }
    plain = ChunkWriter("chatcmpl-1", "public-name", True).finish("stop", mark=None)
    assert b"tokenbus" not in plain


def test_the_conversations_done_event_says_whether_the_answer_fit() -> None:
    assert b'"output_valid":true' in format_item(a_completion(output_valid=True))
    assert b"output_valid" not in format_item(a_completion())


def test_invalid_output_is_a_bad_gateway() -> None:
    assert turn_failure_status("invalid_output") == 502
