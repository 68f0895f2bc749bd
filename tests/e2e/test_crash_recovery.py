"""A generator killed mid-turn: the turn restarts elsewhere, or ends with a clean error.

Runs its own stack with a 2 s ack wait, so JetStream redelivers the request to
the restarted generator quickly; `tokenbus up` restarts a crashed generator.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_conversations import SseEvent, sse
from tests.support import Stack, running_stack

pytestmark = pytest.mark.e2e

LONG = {
    "content": "Write a very long story about a dragon who learns to cook.",
    "max_tokens": 200,
    "temperature": 0,
}


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        Path(tmp_path_factory.mktemp("crash")), env={"TOKENBUS_GENERATOR_ACK_WAIT_S": "2"}
    ) as stack:
        yield stack


@pytest.fixture
async def http(crash_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=crash_stack.gateway_url, headers=crash_stack.auth, timeout=60
    ) as client:
        yield client


def kill_generator(stack: Stack) -> None:
    os.kill(stack.pid("generator"), signal.SIGKILL)


async def test_a_turn_whose_generator_dies_restarts_with_a_reset_event(
    crash_stack: Stack, http: httpx.AsyncClient
) -> None:
    conversation_id = (await http.post("/v1/conversations", json={})).json()["id"]
    events: list[SseEvent] = []
    async with (
        asyncio.timeout(90),
        http.stream("POST", f"/v1/conversations/{conversation_id}/messages", json=LONG) as r,
    ):
        async for event in sse(r):
            events.append(event)
            if sum(e.event == "delta" for e in events) == 5 and not any(
                e.event == "reset" for e in events
            ):
                kill_generator(crash_stack)
            if event.event == "done":  # the answer is over (a title may follow)
                break

    kinds = [e.event for e in events]
    assert "reset" in kinds, kinds
    reset_at = kinds.index("reset")
    assert events[reset_at].data["attempt"] == 2
    assert kinds[-1] == "done"
    after_reset = "".join(e.data["text"] for e in events[reset_at:] if e.event == "delta")
    assert after_reset
    async with asyncio.timeout(30):
        while True:
            stored = (await http.get(f"/v1/conversations/{conversation_id}")).json()
            if stored["active_turn_id"] is None and len(stored["messages"]) == 2:
                break
            await asyncio.sleep(0.1)
    # What is kept is the restarted answer, not a mix of both attempts.
    assert stored["messages"][-1]["content"] == after_reset


async def test_an_openai_stream_whose_generator_dies_ends_with_a_clean_error(
    crash_stack: Stack, http: httpx.AsyncClient
) -> None:
    body = {
        "model": "smollm2-135m",
        "messages": [{"role": "user", "content": LONG["content"]}],
        "max_tokens": 200,
        "temperature": 0,
        "stream": True,
    }
    lines: list[str] = []
    async with (
        asyncio.timeout(90),
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            lines.append(line)
            if sum('"content":"' in x for x in lines) == 6:
                kill_generator(crash_stack)
    assert lines[-1] != "data: [DONE]"
    error = json.loads(lines[-1][len("data: ") :])["error"]
    assert error["code"] == "upstream_error"
    assert "retry" in error["message"]
