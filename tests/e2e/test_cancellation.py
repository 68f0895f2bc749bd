"""A client that leaves stops the model: the upstream request is closed at once.

Proof comes from the model server itself: llama.cpp's tokens_predicted_total
counter shows how many tokens it generated. At temperature 0 this prompt runs
to the full max_tokens when nobody cancels it.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import nats
import pytest
from anthropic import AsyncAnthropic
from nats.js.api import DeliverPolicy

from contracts import TurnCompleted, TurnUsage, parse_turn_event
from contracts.events import TurnEventBase
from contracts.subjects import TURNS_STREAM, turn_filter
from tests.support import Stack

pytestmark = pytest.mark.e2e

MAX_TOKENS = 300
LONG_PROMPT = "Write a very long story about a dragon who learns to cook. Use at least 500 words."
LONG_ANSWER = {
    "model": "smollm2-135m",
    "messages": [{"role": "user", "content": LONG_PROMPT}],
    "max_tokens": MAX_TOKENS,
    "temperature": 0,
}


async def predicted_tokens(stack: Stack) -> int:
    metrics_url = stack.upstream_url.removesuffix("/v1") + "/metrics"
    async with httpx.AsyncClient() as http:
        text = (await http.get(metrics_url)).text
    found = re.search(r"^llamacpp:tokens_predicted_total (\d+)", text, re.MULTILINE)
    assert found, "llama.cpp exposes no tokens_predicted_total"
    return int(found.group(1))


async def settled_predicted_tokens(stack: Stack) -> int:
    """The counter once every llama.cpp slot is idle: it counts a request at its release."""
    slots_url = stack.upstream_url.removesuffix("/v1") + "/slots"
    async with httpx.AsyncClient() as http, asyncio.timeout(30):
        while any(slot.get("is_processing") for slot in (await http.get(slots_url)).json()):
            await asyncio.sleep(0.05)
    return await predicted_tokens(stack)


async def turn_events(stack: Stack, turn_id: str) -> list[TurnEventBase]:
    nc = await nats.connect(stack.nats_url)
    try:
        sub = await nc.jetstream().subscribe(
            turn_filter(turn_id, turn_id),
            stream=TURNS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        events: list[TurnEventBase] = []
        async with asyncio.timeout(20):
            while not events or events[-1].type not in {"turn.completed", "turn.failed"}:
                events.append(parse_turn_event((await sub.next_msg(timeout=20)).data))
        await sub.unsubscribe()
        return events
    finally:
        await nc.close()


async def cut_after(stack: Stack, body: dict[str, object], chunks: int) -> str:
    """Stream a completion, leave after `chunks` chunks of text; the turn's id."""
    received, turn_id = 0, ""
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.auth, timeout=30) as http,
        http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r,
    ):
        async for line in r.aiter_lines():
            if found := re.search(r'"id":"chatcmpl-([^"]+)"', line):
                turn_id = found.group(1)
            if '"content":"' in line and '"role"' not in line:
                received += 1
            if received == chunks:
                break  # leaving the block closes the connection
    return turn_id


async def test_a_streaming_client_that_disconnects_stops_the_model_and_is_metered(
    stack: Stack,
) -> None:
    before = await settled_predicted_tokens(stack)
    received = 5
    turn_id = await cut_after(stack, LONG_ANSWER, received)

    # The generator ends the turn only after it has closed the upstream response.
    events = await turn_events(stack, turn_id)
    generated = await settled_predicted_tokens(stack) - before
    last = events[-1]
    assert isinstance(last, TurnCompleted)
    assert last.finish_reason == "cancelled"
    usage = next(e for e in events if isinstance(e, TurnUsage))
    # Metered for what was actually generated, never zero; the prompt it read is
    # billed too (estimated: OpenAI's stream says its size only at the end).
    assert usage.output_tokens >= received
    assert usage.input_tokens > 0
    assert usage.estimated
    # The model stopped shortly after the client left, far from the 300 it would make.
    assert generated < 60, f"the model generated {generated} tokens after a cut at {received}"


async def test_a_cut_anthropic_stream_bills_the_exact_prompt_the_provider_counted(
    stack: Stack,
) -> None:
    body = {**LONG_ANSWER, "model": "smollm2-135m-anthropic"}
    turn_id = await cut_after(stack, body, 5)
    usage = next(e for e in await turn_events(stack, turn_id) if isinstance(e, TurnUsage))

    # The same prompt, counted by the same server through the same SDK.
    client = AsyncAnthropic(base_url=stack.upstream_url.removesuffix("/v1"), api_key="none")
    try:
        counted = await client.messages.create(
            model="smollm2-135m",
            max_tokens=1,
            messages=[{"role": "user", "content": LONG_PROMPT}],
        )
    finally:
        await client.close()
    # Anthropic counts cache reads and writes apart; the prompt's size is the sum.
    told = counted.usage
    prompt_size = (
        told.input_tokens
        + (told.cache_read_input_tokens or 0)
        + (told.cache_creation_input_tokens or 0)
    )
    assert usage.input_tokens == prompt_size
    assert usage.output_tokens >= 5
    assert usage.estimated  # the output was counted from the chunks


async def decoding_started(stack: Stack) -> None:
    """Wait until a busy llama.cpp slot has decoded some tokens (/slots endpoint).

    An idle slot still shows what its last request decoded: only busy ones count.
    """
    slots_url = stack.upstream_url.removesuffix("/v1") + "/slots"
    async with httpx.AsyncClient() as http, asyncio.timeout(30):
        while True:
            slots = (await http.get(slots_url)).json()
            if any(
                s.get("is_processing") and (s.get("next_token") or [{}])[0].get("n_decoded", 0) >= 5
                for s in slots
            ):
                return
            await asyncio.sleep(0.02)


async def test_a_non_streaming_client_that_gives_up_stops_the_model(stack: Stack) -> None:
    before = await settled_predicted_tokens(stack)
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=stack.auth, timeout=60
    ) as http:
        waiting = asyncio.create_task(http.post("/v1/chat/completions", json=LONG_ANSWER))
        await decoding_started(stack)
        waiting.cancel()  # the client gives up and closes its connection
        with pytest.raises(asyncio.CancelledError):
            await waiting
    generated = await settled_predicted_tokens(stack) - before
    assert 5 <= generated < MAX_TOKENS // 2, f"the model generated {generated} tokens"


async def test_a_client_that_leaves_a_messages_stream_stops_the_model(stack: Stack) -> None:
    """The same on Anthropic's surface, with Anthropic's SDK: leaving mid-stream cancels."""
    before = await settled_predicted_tokens(stack)
    turn_id, received = "", 0
    client = AsyncAnthropic(base_url=stack.gateway_url, api_key=stack.api_key, max_retries=0)
    async with (
        client,
        client.messages.stream(
            model="smollm2-135m",
            max_tokens=MAX_TOKENS,
            messages=[{"role": "user", "content": LONG_PROMPT}],
            # This SDK's stream() takes no temperature argument; the body field it is.
            extra_body={"temperature": 0},
        ) as stream,
    ):
        async for event in stream:
            if event.type == "message_start":
                turn_id = event.message.id.removeprefix("msg_")
            elif event.type == "text":
                received += 1
                if received == 5:
                    break  # leaving the block closes the connection
    events = await turn_events(stack, turn_id)
    generated = await settled_predicted_tokens(stack) - before
    last = events[-1]
    assert isinstance(last, TurnCompleted)
    assert last.finish_reason == "cancelled"
    assert generated < 60, f"the model generated {generated} tokens after a cut at {received}"
