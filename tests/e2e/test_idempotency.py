"""Idempotency-Key: a retried POST attaches to its first turn; nothing runs or bills twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import nats
import pytest

from contracts import TurnUsage, new_id, parse_turn_event
from contracts.subjects import TURNS_STREAM, turn_filter
from tests.support import Stack, extra_gateway, requests_published

pytestmark = pytest.mark.e2e

BODY = {
    "model": "smollm2-135m",
    "messages": [{"role": "user", "content": "Describe a lighthouse."}],
    "max_tokens": 40,
    "temperature": 0,
}


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=stack.auth, timeout=60
    ) as client:
        yield client


async def usage_events(stack: Stack, turn_id: str) -> list[TurnUsage]:
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            turn_filter(turn_id, turn_id), stream=TURNS_STREAM, ordered_consumer=True
        )
        found = []
        try:
            while True:
                event = parse_turn_event((await sub.next_msg(timeout=1)).data)
                if isinstance(event, TurnUsage):
                    found.append(event)
        except TimeoutError:
            return found
    finally:
        await nc.close()


async def test_a_retried_completion_returns_the_first_result_and_is_metered_once(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    key = {"Idempotency-Key": new_id()}
    before = await requests_published(stack)
    first = await http.post("/v1/chat/completions", json=BODY, headers=key)
    second = await http.post("/v1/chat/completions", json=BODY, headers=key)
    assert first.status_code == second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["choices"] == first.json()["choices"]
    assert second.json()["usage"] == first.json()["usage"]
    assert await requests_published(stack) == before + 1
    turn_id = first.json()["id"].removeprefix("chatcmpl-")
    assert len(await usage_events(stack, turn_id)) == 1


async def test_a_retry_on_another_replica_outlasts_the_first_readers_grace(stack: Stack) -> None:
    """The retry re-attaches: the cancel the dropped stream left (1 s grace) never fires."""
    key = {**stack.auth, "Idempotency-Key": new_id()}
    body = {**BODY, "stream": True, "max_tokens": 160}
    with extra_gateway(stack, resume_grace_s="1") as first_replica:
        async with (
            httpx.AsyncClient(base_url=first_replica, headers=key, timeout=60) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            async for line in response.aiter_lines():
                if '"content":"' in line:
                    break  # the network drops here
        async with (
            httpx.AsyncClient(base_url=stack.gateway_url, headers=key, timeout=60) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
    # 160 tokens take the local model over two seconds: cancelled, it would end sooner.
    assert finish == "length"


async def test_a_stream_dropped_and_retried_with_its_key_gets_the_whole_answer(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    key = {"Idempotency-Key": new_id()}
    body = {**BODY, "stream": True, "max_tokens": 60}
    before = await requests_published(stack)
    async with http.stream("POST", "/v1/chat/completions", json=body, headers=key) as response:
        seen = 0
        async for line in response.aiter_lines():
            seen += '"content":"' in line
            if seen == 4:
                break  # the network drops here

    async def replay() -> tuple[str, list[dict[str, object]]]:
        async with http.stream("POST", "/v1/chat/completions", json=body, headers=key) as response:
            lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(line[6:]) for line in lines[:-1]]
        text = "".join(
            c["choices"][0]["delta"].get("content") or ""  # type: ignore[index]
            for c in chunks
            if c["choices"]
        )
        return text, chunks

    text, chunks = await replay()
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]  # type: ignore[index]
    assert finish == "length"  # not cut short: the turn survived the drop
    assert len({c["id"] for c in chunks}) == 1
    assert await requests_published(stack) == before + 1
    # Every retry replays the same stored turn, to the character.
    assert (await replay())[0] == text
    assert await requests_published(stack) == before + 1


async def test_the_same_key_with_a_different_body_is_refused(http: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": new_id()}
    assert (await http.post("/v1/chat/completions", json=BODY, headers=key)).status_code == 200
    other = {**BODY, "max_tokens": 5}
    response = await http.post("/v1/chat/completions", json=other, headers=key)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"


async def test_a_bad_idempotency_key_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/chat/completions", json=BODY, headers={"Idempotency-Key": "k" * 300}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


async def test_a_retried_conversation_message_is_stored_once(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    # Titled up front: an untitled conversation's first exchange also queues a title request.
    created = await http.post("/v1/conversations", json={"title": "Greetings"})
    conversation_id = created.json()["id"]
    url = f"/v1/conversations/{conversation_id}/messages"
    key = {"Idempotency-Key": new_id()}
    body = {"content": "Say hi.", "max_tokens": 10}
    before = await requests_published(stack)
    turns = []
    for _ in range(2):
        async with http.stream("POST", url, json=body, headers=key) as response:
            lines = [line async for line in response.aiter_lines()]
        turn = next(json.loads(line[6:]) for line in lines if line.startswith("data: "))
        turns.append(turn["turn_id"])
        assert any(line == "event: done" for line in lines)
    assert turns[0] == turns[1]
    assert await requests_published(stack) == before + 1
    stored = (await http.get(f"/v1/conversations/{conversation_id}")).json()
    assert [m["role"] for m in stored["messages"] if m["role"] == "user"] == ["user"]
