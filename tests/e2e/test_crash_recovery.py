"""A generator killed mid-turn: the turn restarts elsewhere, or ends with a clean error.

Runs its own stack of two generator replicas with the default ack wait, as
production runs several: the dead one's turn moves to the other within seconds
(`tokenbus up` also restarts the dead one).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
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
    with running_stack(Path(tmp_path_factory.mktemp("crash")), "--generators", "2") as stack:
        yield stack


@pytest.fixture
async def http(crash_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=crash_stack.gateway_url, headers=crash_stack.auth, timeout=60
    ) as client:
        yield client


GENERATORS = ("generator1", "generator2")


def kill_generator(stack: Stack, correlation_id: str) -> None:
    """Kill the replica that is running the request (its log names the request's id)."""
    [holder] = [name for name in GENERATORS if correlation_id in stack.log(name)]
    os.kill(stack.pid(holder), signal.SIGKILL)


async def test_a_turn_whose_generator_dies_restarts_with_a_reset_event(
    crash_stack: Stack, http: httpx.AsyncClient
) -> None:
    conversation_id = (await http.post("/v1/conversations", json={})).json()["id"]
    events: list[SseEvent] = []
    killed_at = reset_after = 0.0
    async with (
        asyncio.timeout(90),
        http.stream(
            "POST",
            f"/v1/conversations/{conversation_id}/messages",
            json=LONG,
            headers={"X-Request-ID": (request_id := uuid.uuid4().hex)},
        ) as r,
    ):
        async for event in sse(r):
            events.append(event)
            if sum(e.event == "delta" for e in events) == 5 and not killed_at:
                kill_generator(crash_stack, request_id)
                killed_at = time.monotonic()
            if event.event == "reset":
                reset_after = time.monotonic() - killed_at
            if event.event == "done":  # the answer is over (a title may follow)
                break

    kinds = [e.event for e in events]
    assert "reset" in kinds, kinds
    reset_at = kinds.index("reset")
    assert events[reset_at].data["attempt"] >= 2
    # The dead generator's turn moves on within seconds, not after half a minute.
    assert reset_after < 5.0, reset_after
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
    # Billed as both attempts: the provider made the dead attempt's tokens too.
    relayed_before = sum(e.event == "delta" for e in events[:reset_at])
    second = stored["messages"][-1]["usage"]["output_tokens"]
    async with asyncio.timeout(15):
        while (chat := await chat_output_tokens(http)) < relayed_before + second:
            await asyncio.sleep(0.2)
    assert chat >= relayed_before + second > second


async def chat_output_tokens(http: httpx.AsyncClient) -> int:
    rows = (await http.get("/v1/usage", params={"group_by": "purpose"})).json()["data"]
    return sum(r["output_tokens"] for r in rows if r["purpose"] == "chat")


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
    killed_at = 0.0
    async with (
        asyncio.timeout(90),
        http.stream(
            "POST",
            "/v1/chat/completions",
            json=body,
            headers={"X-Request-ID": (request_id := uuid.uuid4().hex)},
        ) as response,
    ):
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            lines.append(line)
            if sum('"content":"' in x for x in lines) == 6 and not killed_at:
                kill_generator(crash_stack, request_id)
                killed_at = time.monotonic()
    ended_after = time.monotonic() - killed_at
    assert ended_after < 5.0
    assert lines[-1] != "data: [DONE]"
    error = json.loads(lines[-1][len("data: ") :])["error"]
    assert error["code"] == "upstream_error"
    assert "retry" in error["message"]


async def test_a_title_whose_titler_dies_comes_within_seconds_of_its_restart(
    crash_stack: Stack, http: httpx.AsyncClient
) -> None:
    old_pid = crash_stack.pid("titler")
    conversation_id = (await http.post("/v1/conversations", json={})).json()["id"]
    restarted_at = 0.0

    async def restart_seen() -> None:
        nonlocal restarted_at
        # Restarted means the new process is consuming: it logs its model once ready.
        while (
            crash_stack.pid("titler") == old_pid
            or crash_stack.log("titler").count("titles from") < 2
        ):
            await asyncio.sleep(0.05)
        restarted_at = time.monotonic()

    watcher: asyncio.Task[None] | None = None
    async with (
        asyncio.timeout(90),
        http.stream(
            "POST",
            f"/v1/conversations/{conversation_id}/messages",
            json={**LONG, "max_tokens": 60},
        ) as r,
    ):
        async for event in sse(r):
            if event.event == "delta" and watcher is None:
                # The title is asked for when the answer is done: nobody is there to make it.
                os.kill(old_pid, signal.SIGKILL)
                watcher = asyncio.create_task(restart_seen())
            if event.event == "title":
                titled_at = time.monotonic()
                break
    assert watcher is not None
    await watcher
    print(f"title {titled_at - restarted_at:.2f}s after the titler's restart")
    assert titled_at - restarted_at < 5.0, titled_at - restarted_at
    stored = (await http.get(f"/v1/conversations/{conversation_id}")).json()
    assert stored["title"] == event.data["title"]
