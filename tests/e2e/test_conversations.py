"""The conversations API on the real stack: history, typed SSE, resume, cancel, delete."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
import pytest

from contracts.subjects import TURNS_STREAM, conversation_filter
from tests.support import Stack, extra_gateway

pytestmark = pytest.mark.e2e

LONG = "Write a very long story about a dragon who learns to cook."


@dataclass
class SseEvent:
    event: str
    data: dict[str, Any]
    id: str | None = None


@dataclass
class Transcript:
    events: list[SseEvent] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(e.data["text"] for e in self.events if e.event == "delta")

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.events if e.id]

    def last(self, name: str) -> SseEvent:
        return next(e for e in reversed(self.events) if e.event == name)


async def sse(response: httpx.Response) -> AsyncIterator[SseEvent]:
    current: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "event" in current:
                yield SseEvent(current["event"], json.loads(current["data"]), current.get("id"))
            current = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            current[key] = value


async def read(response: httpx.Response, stop_after_deltas: int | None = None) -> Transcript:
    transcript = Transcript()
    async for event in sse(response):
        transcript.events.append(event)
        deltas = sum(e.event == "delta" for e in transcript.events)
        if stop_after_deltas is not None and deltas >= stop_after_deltas:
            break
    return transcript


async def send_message(
    http: httpx.AsyncClient,
    conversation_id: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> list[SseEvent]:
    """POST a message; its turn's events up to `done` or `error` (a title may follow)."""
    events: list[SseEvent] = []
    async with http.stream(
        "POST", f"/v1/conversations/{conversation_id}/messages", json=body, headers=headers
    ) as response:
        assert response.status_code == 200, await response.aread()
        async for event in sse(response):
            events.append(event)
            if event.event in {"done", "error"}:
                break
    return events


async def new_conversation(http: httpx.AsyncClient, **body: Any) -> str:
    response = await http.post("/v1/conversations", json=body)
    assert response.status_code == 201
    conversation_id: str = response.json()["id"]
    return conversation_id


async def wait_for_answer(http: httpx.AsyncClient, conversation_id: str) -> dict[str, Any]:
    """The assistant message, once the recorder has stored it."""
    async with asyncio.timeout(30):
        while True:
            body = (await http.get(f"/v1/conversations/{conversation_id}")).json()
            answers = [m for m in body["messages"] if m["role"] == "assistant"]
            if answers and body["active_turn_id"] is None:
                return body
            await asyncio.sleep(0.1)


async def answered_conversation(http: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    """A new conversation with one short exchange, once its answer is recorded."""
    conversation_id = await new_conversation(http)
    async with http.stream(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": "Hi", "max_tokens": 5},
    ) as response:
        await read(response)
    return conversation_id, await wait_for_answer(http, conversation_id)


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=stack.auth, timeout=60
    ) as client:
        yield client


async def test_a_conversation_keeps_its_history_and_sends_it_as_context(
    http: httpx.AsyncClient,
) -> None:
    conversation_id = await new_conversation(http, system="Answer in one short sentence.")
    for question in ("My name is Ada.", "What is my name?"):
        async with http.stream(
            "POST",
            f"/v1/conversations/{conversation_id}/messages",
            json={"content": question, "max_tokens": 30},
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            transcript = await read(response)
        assert transcript.events[0].event == "turn"
        assert transcript.last("done").data["finish_reason"] in {"stop", "length"}
        assert transcript.last("usage").data["output_tokens"] > 0
        await wait_for_answer(http, conversation_id)

    body = (await http.get(f"/v1/conversations/{conversation_id}")).json()
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    # The second turn's prompt carried the first exchange: far more input tokens.
    first, second = body["messages"][1]["usage"], body["messages"][3]["usage"]
    assert second["input_tokens"] > first["input_tokens"] + 5
    assert body["usage"]["output_tokens"] == first["output_tokens"] + second["output_tokens"]

    listed = (await http.get("/v1/conversations")).json()["data"]
    assert listed[0]["id"] == conversation_id  # newest first


async def test_resume_on_another_gateway_replica_loses_and_repeats_nothing(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    conversation_id = await new_conversation(http)
    async with http.stream(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": LONG, "max_tokens": 80, "temperature": 0},
    ) as response:
        first = await read(response, stop_after_deltas=5)
    last_id = first.ids[-1]

    with extra_gateway(stack) as other_url:
        async with (
            httpx.AsyncClient(base_url=other_url, headers=stack.auth, timeout=60) as other,
            other.stream(
                "GET",
                f"/v1/conversations/{conversation_id}/stream",
                headers={"Last-Event-ID": last_id},
            ) as response,
        ):
            rest = await read(response)

    ids = first.ids + rest.ids
    seqs = [int(i.rsplit(":", 1)[1]) for i in ids]
    assert seqs == list(range(1, len(seqs) + 1)), "an event was lost or repeated"
    assert rest.last("done").data["finish_reason"] == "length"
    stored = await wait_for_answer(http, conversation_id)
    assert stored["messages"][-1]["content"] == first.text + rest.text
    assert stored["messages"][-1]["status"] == "complete"


async def test_attaching_without_last_event_id_replays_the_turn_from_its_start(
    http: httpx.AsyncClient,
) -> None:
    conversation_id = await new_conversation(http)
    async with http.stream(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": "Say hello.", "max_tokens": 10},
    ) as response:
        original = await read(response)
    async with http.stream("GET", f"/v1/conversations/{conversation_id}/stream") as response:
        replayed = await read(response)
    assert replayed.ids == original.ids
    assert replayed.text == original.text


async def test_a_reader_that_leaves_for_good_cancels_the_turn_after_the_grace(
    stack: Stack,
) -> None:
    with extra_gateway(stack, resume_grace_s="0.5") as url:
        async with httpx.AsyncClient(base_url=url, headers=stack.auth, timeout=60) as http:
            conversation_id = await new_conversation(http)
            async with http.stream(
                "POST",
                f"/v1/conversations/{conversation_id}/messages",
                json={"content": LONG, "max_tokens": 300, "temperature": 0},
            ) as response:
                await read(response, stop_after_deltas=3)
            stored = await wait_for_answer(http, conversation_id)
    answer = stored["messages"][-1]
    assert answer["status"] == "cancelled"
    assert answer["content"]  # the partial answer is kept
    assert 0 < answer["usage"]["output_tokens"] < 300


async def test_the_cancel_endpoint_stops_a_running_turn(http: httpx.AsyncClient) -> None:
    conversation_id = await new_conversation(http)
    async with http.stream(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": LONG, "max_tokens": 300, "temperature": 0},
    ) as response:
        events = sse(response)
        while (await anext(events)).event != "delta":
            pass
        cancelled = await http.post(f"/v1/conversations/{conversation_id}/cancel")
        assert cancelled.status_code == 200
        rest = Transcript([e async for e in events])
    assert rest.last("done").data["finish_reason"] == "cancelled"
    stored = await wait_for_answer(http, conversation_id)
    assert stored["messages"][-1]["status"] == "cancelled"
    again = await http.post(f"/v1/conversations/{conversation_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "no_turn_in_progress"


async def test_attaching_to_a_turn_past_the_replay_window_answers_410_at_once(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    conversation_id, answered = await answered_conversation(http)
    # What the stream's age or size limit does to an old turn.
    nc = await nats.connect(stack.nats_url)
    try:
        await nc.jetstream().purge_stream(
            TURNS_STREAM, subject=conversation_filter(conversation_id)
        )
    finally:
        await nc.close()

    async with asyncio.timeout(10):  # not an hour of heartbeats
        response = await http.get(f"/v1/conversations/{conversation_id}/stream")
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "turn_expired"
    kept = (await http.get(f"/v1/conversations/{conversation_id}")).json()
    assert kept["messages"] == answered["messages"]


async def test_delete_removes_the_conversation_and_purges_its_events(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    conversation_id, _ = await answered_conversation(http)

    assert (await http.delete(f"/v1/conversations/{conversation_id}")).status_code == 204
    assert (await http.get(f"/v1/conversations/{conversation_id}")).status_code == 404
    nc = await nats.connect(stack.nats_url)
    try:
        info = await nc.jetstream().stream_info(
            TURNS_STREAM, subjects_filter=conversation_filter(conversation_id)
        )
        assert not info.state.subjects
    finally:
        await nc.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/conversations/{id}"),
        ("GET", "/v1/conversations/{id}/stream"),
        ("POST", "/v1/conversations/{id}/cancel"),
        ("DELETE", "/v1/conversations/{id}"),
    ],
)
@pytest.mark.parametrize("unknown", ["conv0000", "has.dots", "x" * 100])
async def test_unknown_conversations_answer_404(
    http: httpx.AsyncClient, method: str, path: str, unknown: str
) -> None:
    response = await http.request(method, path.format(id=unknown))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "conversation_not_found"


async def test_bad_input_on_conversations_gets_clean_errors(http: httpx.AsyncClient) -> None:
    conversation_id = await new_conversation(http)
    url = f"/v1/conversations/{conversation_id}"

    unknown = await http.post(f"{url}x/messages", json={"content": "hi"})
    assert unknown.status_code == 404

    bad_id = await http.get(f"{url}/stream", headers={"Last-Event-ID": "not-an-id"})
    assert bad_id.status_code == 400
    assert bad_id.json()["error"]["code"] == "invalid_last_event_id"

    too_long = await http.post(f"{url}/messages", json={"content": "word " * 6_000})
    assert too_long.status_code == 400
    error = too_long.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "4096" in error["message"]

    for body in ({}, {"content": ""}, {"content": 5}, {"content": "x", "max_tokens": 0}):
        response = await http.post(f"{url}/messages", json=body)
        assert response.status_code == 400, body

    model = await http.post("/v1/conversations", json={"model": "no-such-model"})
    assert model.status_code == 404
    assert model.json()["error"]["code"] == "model_not_found"

    # Nothing was left half-done by the refused messages.
    body = (await http.get(url)).json()
    assert body["messages"] == []
    assert body["active_turn_id"] is None


async def test_a_second_message_while_a_turn_runs_is_refused_with_409(
    http: httpx.AsyncClient,
) -> None:
    conversation_id = await new_conversation(http)
    url = f"/v1/conversations/{conversation_id}/messages"
    async with http.stream(
        "POST", url, json={"content": LONG, "max_tokens": 60, "temperature": 0}
    ) as response:
        events = sse(response)
        assert (await anext(events)).event == "turn"
        busy = await http.post(url, json={"content": "and another thing"})
        assert busy.status_code == 409
        assert busy.json()["error"]["code"] == "turn_in_progress"
        async for _ in events:
            pass
