"""nats-server killed and restarted with streams in flight: every answer whole or visibly broken.

The stack runs on the scripted upstream so each answer's text is known
(`tok0 tok1 ... tokN-1`): a stream that ends normally must carry all of it, in
order, and a stored answer marked complete likewise. A stream may instead end
with its documented error (or, on the conversations API, restart after a
`reset`); what it may never do is finish with a token missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import httpx
import pytest

from tests.e2e.test_conversations import SseEvent, sse
from tests.faults.upstream import FaultyUpstream
from tests.support import Stack

pytestmark = pytest.mark.e2e

MODEL = "scripted"
COMPLETIONS = 14
TURNS = 6
TOKENS = 120
# ~3 s per answer: the kill lands in the middle of every one of them.
STEP = {"kind": "ok", "tokens": TOKENS, "delay_s": 0.025}


def whole(text: str) -> bool:
    """The scripted answer from its first token to its last, nothing skipped."""
    words = text.split()
    return bool(words) and words == [f"tok{n}" for n in range(len(words))]


async def completion(http: httpx.AsyncClient) -> tuple[str, str, int]:
    """(how it ended, the text relayed, its usage's completion tokens or -1)."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Count."}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    text, ending, completion_tokens = "", "cut off", -1
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            return f"status {response.status_code}", "", -1
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                ending = "done"
                continue
            chunk: dict[str, Any] = json.loads(line[len("data: ") :])
            if "error" in chunk:
                ending = f"error {chunk['error']['code']}"
                continue
            if chunk.get("usage"):
                completion_tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk["choices"]:
                text += choice["delta"].get("content") or ""
    return ending, text, completion_tokens


async def turn(http: httpx.AsyncClient) -> tuple[str, list[SseEvent]]:
    conversation_id = (await http.post("/v1/conversations", json={"title": "bus"})).json()["id"]
    events: list[SseEvent] = []
    async with http.stream(
        "POST", f"/v1/conversations/{conversation_id}/messages", json={"content": "Count."}
    ) as response:
        assert response.status_code == 200, await response.aread()
        async for event in sse(response):
            events.append(event)
            if event.event in {"done", "error"}:
                break
    return conversation_id, events


async def test_no_stream_finishes_with_a_gap_when_nats_server_is_killed_mid_stream(
    scripted_stack: Stack, upstream: FaultyUpstream
) -> None:
    upstream.play(*[STEP] * (COMPLETIONS + TURNS))
    async with httpx.AsyncClient(
        base_url=scripted_stack.gateway_url, headers=scripted_stack.auth, timeout=90
    ) as http:
        running = [asyncio.create_task(completion(http)) for _ in range(COMPLETIONS)]
        turns = [asyncio.create_task(turn(http)) for _ in range(TURNS)]
        await asyncio.sleep(1.5)  # every answer has started and none has finished
        os.kill(killed := scripted_stack.pid("nats"), signal.SIGKILL)
        async with asyncio.timeout(80):
            completions = await asyncio.gather(*running)
            conversations = await asyncio.gather(*turns)
        assert scripted_stack.pid("nats") != killed, "nats-server was not restarted"

        for ending, text, completion_tokens in completions:
            if ending == "done":
                assert whole(text), text
                assert len(text.split()) == TOKENS
                assert completion_tokens in (-1, TOKENS)
            else:
                # Visibly broken: the documented error chunk, never a cut without one.
                assert ending.startswith(("error ", "status 503")), (ending, text)

        for conversation_id, events in conversations:
            kinds = [e.event for e in events]
            # What followed the last reset is the answer the client was left with.
            last_reset = max((i for i, k in enumerate(kinds) if k == "reset"), default=-1)
            after = events[last_reset + 1 :]
            relayed = "".join(e.data["text"] for e in after if e.event == "delta")
            if kinds[-1] == "done":
                assert whole(relayed), (kinds, relayed)
            else:
                assert kinds[-1] == "error", kinds
            async with asyncio.timeout(30):
                while True:
                    response = await http.get(f"/v1/conversations/{conversation_id}")
                    if response.status_code == 200 and response.json()["active_turn_id"] is None:
                        break
                    await asyncio.sleep(0.2)
            answer = response.json()["messages"][-1]
            if answer["status"] == "complete":
                assert whole(answer["content"]), answer
                assert kinds[-1] == "done"
                assert answer["content"] == relayed
            else:
                assert kinds[-1] == "error", (answer["status"], kinds)
    endings = [ending for ending, _, _ in completions]
    print(f"completions: {endings}; turns: {[c[1][-1].event for c in conversations]}")
