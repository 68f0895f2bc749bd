"""Coalesced deltas end to end: a burst travels in fewer events, a slow stream token by token.

A real stack (gateway, NATS JetStream, generator) in front of the scripted upstream,
which can send its tokens with no pause between them (a burst) or paced.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import nats
import pytest

from contracts.subjects import TURNS_STREAM, conversation_filter
from tests.e2e.test_conversations import SseEvent, read
from tests.faults.upstream import FaultyUpstream
from tests.support import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
async def http(scripted_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=scripted_stack.gateway_url, headers=scripted_stack.auth, timeout=60
    ) as client:
        yield client


async def conversation(http: httpx.AsyncClient) -> str:
    response = await http.post("/v1/conversations", json={})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def deltas(events: list[SseEvent]) -> list[SseEvent]:
    return [e for e in events if e.event == "delta"]


def seqs(events: list[SseEvent]) -> list[int]:
    return [int(e.id.rsplit(":", 1)[1]) for e in events if e.id]


async def stored_deltas(stack: Stack, conversation_id: str) -> list[str]:
    """The delta events of the conversation as the turns stream holds them, in order."""
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            conversation_filter(conversation_id), stream=TURNS_STREAM, ordered_consumer=True
        )
        texts: list[str] = []
        while True:
            try:
                msg = await sub.next_msg(timeout=1.0)
            except TimeoutError:
                return texts
            event = json.loads(msg.data)
            if event["type"] == "turn.delta":
                texts.append(event["text"])
    finally:
        await nc.close()


async def test_a_burst_travels_in_fewer_events_than_tokens_and_resumes_exactly(
    http: httpx.AsyncClient, upstream: FaultyUpstream, scripted_stack: Stack
) -> None:
    tokens = 400
    upstream.play({"kind": "ok", "tokens": tokens, "delay_s": 0})
    conversation_id = await conversation(http)
    async with http.stream(
        "POST", f"/v1/conversations/{conversation_id}/messages", json={"content": "go"}
    ) as response:
        assert response.status_code == 200
        whole = await read(response)

    expected = "".join(f"tok{n} " for n in range(tokens))
    assert whole.text == expected, "a token was lost, repeated or reordered"
    assert seqs(whole.events) == list(range(1, len(seqs(whole.events)) + 1))
    sent = deltas(whole.events)
    assert len(sent) < tokens, "a burst was not coalesced"
    # What other consumers of the bus see: the same events, the same text.
    on_bus = await stored_deltas(scripted_stack, conversation_id)
    assert len(on_bus) == len(sent)
    assert "".join(on_bus) == expected

    # Resume from the middle: exactly the events after that id, nothing else.
    middle = sent[len(sent) // 2]
    async with http.stream(
        "GET",
        f"/v1/conversations/{conversation_id}/stream",
        headers={"Last-Event-ID": str(middle.id)},
    ) as response:
        rest = await read(response)
    after = whole.events[whole.events.index(middle) + 1 :]
    assert [e.id for e in rest.events if e.id] == [e.id for e in after if e.id]
    assert rest.text == "".join(e.data["text"] for e in deltas(after))


async def test_a_slow_stream_sends_each_token_in_its_own_event_at_once(
    http: httpx.AsyncClient, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "ok", "tokens": 8, "delay_s": 0.05})
    conversation_id = await conversation(http)
    async with http.stream(
        "POST", f"/v1/conversations/{conversation_id}/messages", json={"content": "go"}
    ) as response:
        whole = await read(response)

    assert [e.data["text"] for e in deltas(whole.events)] == [f"tok{n} " for n in range(8)]
