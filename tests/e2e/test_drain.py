"""Graceful drain: SIGTERM to a gateway under load cuts no stream without a resumable end."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import httpx
import pytest

from tests.e2e.test_conversations import SseEvent, read, sse, wait_for_answer
from tests.support import Stack, gateway_process

pytestmark = pytest.mark.e2e

LONG = {"content": "Write a long story about a lighthouse keeper.", "max_tokens": 400}
COMPLETION = {
    "model": "smollm2-135m",
    "messages": [{"role": "user", "content": "Write a long story about a ferry."}],
    "max_tokens": 400,
    "stream": True,
}
SHORT = {
    "model": "smollm2-135m",
    "messages": [{"role": "user", "content": "Say yes."}],
    "max_tokens": 3,
}


async def test_sigterm_under_load_ends_every_stream_resumably(stack: Stack) -> None:
    with gateway_process(stack, drain_grace_s="2", drain_delay_s="1") as (url, process):
        async with (
            httpx.AsyncClient(base_url=url, headers=stack.auth, timeout=60) as draining,
            httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.auth, timeout=120) as other,
        ):
            conversation_id = (await draining.post("/v1/conversations", json={})).json()["id"]
            conversation_events: list[SseEvent] = []
            completion_lines: list[str] = []
            started = asyncio.Event()

            async def converse() -> None:
                async with draining.stream(
                    "POST", f"/v1/conversations/{conversation_id}/messages", json=LONG
                ) as response:
                    async for event in sse(response):
                        conversation_events.append(event)
                        if event.event == "delta":
                            started.set()

            async def complete() -> None:
                headers = {"Idempotency-Key": f"drain-{uuid.uuid4().hex}"}
                async with draining.stream(
                    "POST", "/v1/chat/completions", json=COMPLETION, headers=headers
                ) as response:
                    async for line in response.aiter_lines():
                        if line:
                            completion_lines.append(line)

            streams = [asyncio.create_task(converse()), asyncio.create_task(complete())]
            await asyncio.wait_for(started.wait(), 60)
            process.send_signal(signal.SIGTERM)

            # Readiness goes false at once, while the open streams carry on.
            await asyncio.sleep(0.2)
            ready = await draining.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["draining"] is True
            refused = await draining.post("/v1/chat/completions", json=SHORT)
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "gateway_draining"

            await asyncio.wait_for(asyncio.gather(*streams), 30)
            # uvicorn re-raises the SIGTERM it caught once it has shut down cleanly.
            assert process.wait(timeout=30) in {0, -signal.SIGTERM}

            # The conversation stream ended on purpose, telling the client to come back.
            kinds = [e.event for e in conversation_events]
            assert kinds[-1] in {"reconnect", "done", "title"}, kinds
            # The OpenAI stream ended with a retryable error, or finished.
            assert completion_lines[-1] == "data: [DONE]" or (
                "gateway_draining" in completion_lines[-1]
            ), completion_lines[-3:]

            # The client resumes on another replica exactly where it stopped.
            last_id = next(e.id for e in reversed(conversation_events) if e.id)
            async with other.stream(
                "GET",
                f"/v1/conversations/{conversation_id}/stream",
                headers={"Last-Event-ID": last_id},
            ) as response:
                rest = await read(response)
            seen = [e for e in conversation_events if e.event == "delta"]
            resumed = [e for e in rest.events if e.event == "delta"]
            ending = [(e.event, e.data) for e in rest.events[-3:]]
            assert "done" in [e.event for e in rest.events], ending
            ids = [e.id for e in seen + resumed]
            assert len(ids) == len(set(ids)), "an event came twice"
            seqs = [int(i.split(":")[2]) for i in ids if i and i.split(":")[1] == "1"]
            assert seqs == sorted(seqs)
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "an event was lost"
            text = "".join(e.data["text"] for e in seen + resumed)
            stored = await wait_for_answer(other, conversation_id)
            answer = [m for m in stored["messages"] if m["role"] == "assistant"][-1]
            assert answer["status"] == "complete"
            assert answer["content"] == text


async def test_sigterm_to_a_generator_lets_its_turn_finish_and_loses_no_request(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=stack.auth, timeout=120
    ) as http:
        conversation_id = (await http.post("/v1/conversations", json={})).json()["id"]
        events: list[SseEvent] = []
        async with http.stream(
            "POST",
            f"/v1/conversations/{conversation_id}/messages",
            json={**LONG, "max_tokens": 120},
        ) as response:
            async for event in sse(response):
                events.append(event)
                if event.event == "delta" and len(events) == 4:
                    os.kill(stack.pid("generator"), signal.SIGTERM)
                    # Sent while that generator drains: another one (the restarted
                    # replica) must serve it.
                    late = asyncio.create_task(
                        http.post("/v1/chat/completions", json=SHORT, timeout=120)
                    )
                if event.event == "done":
                    break
        kinds = [e.event for e in events]
        # The turn in hand was finished by the draining generator: no restart, no reset.
        assert "reset" not in kinds
        assert kinds[-1] == "done"
        assert {e.id.split(":")[1] for e in events if e.id} == {"1"}
        answer = await late
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] is not None
