"""A turn is finished for every reader when its client hears `done`.

Right after `done` the answer is in the conversation and the next message is
accepted, on whichever gateway replica serves the next request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.e2e.test_conversations import sse
from tests.support import Stack, extra_gateway

pytestmark = pytest.mark.e2e

SHORT = {"max_tokens": 6, "temperature": 0}


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=stack.auth, timeout=120, limits=limits
    ) as client:
        yield client


@pytest.fixture
async def two_gateways(stack: Stack) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    with extra_gateway(stack) as other_url:
        async with (
            httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.auth, timeout=60) as a,
            httpx.AsyncClient(base_url=other_url, headers=stack.auth, timeout=60) as b,
        ):
            yield a, b


async def send_until_done(
    http: httpx.AsyncClient, conversation_id: str, content: str
) -> tuple[int, str, str | None]:
    """Status, the streamed answer, and its turn id; returns the moment `done` arrives."""
    text, turn_id = "", None
    async with http.stream(
        "POST", f"/v1/conversations/{conversation_id}/messages", json={"content": content, **SHORT}
    ) as response:
        if response.status_code != 200:
            await response.aread()
            return response.status_code, response.text, None
        async for event in sse(response):
            if event.event == "turn":
                turn_id = event.data["turn_id"]
            elif event.event == "delta":
                text += event.data["text"]
            elif event.event in ("done", "error"):
                break
    return 200, text, turn_id


async def test_the_answer_is_stored_and_the_next_message_accepted_right_after_done(
    two_gateways: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    gateways = two_gateways
    conversation_id = (await gateways[0].post("/v1/conversations", json={})).json()["id"]
    for n in range(50):
        # Each turn on one replica, the read and the next turn on the other.
        here, there = gateways[n % 2], gateways[(n + 1) % 2]
        status, text, turn_id = await send_until_done(here, conversation_id, f"Say {n}.")
        assert status == 200, (n, text)
        stored = (await there.get(f"/v1/conversations/{conversation_id}")).json()
        assert stored["active_turn_id"] is None, n
        answer = stored["messages"][-1]
        assert (answer["role"], answer["turn_id"], answer["content"]) == (
            "assistant",
            turn_id,
            text,
        )


async def test_no_conversation_is_still_busy_after_done_under_load(
    http: httpx.AsyncClient,
) -> None:
    async def converse() -> list[int]:
        conversation_id = (await http.post("/v1/conversations", json={})).json()["id"]
        statuses = []
        for n in range(2):
            status, _, _ = await send_until_done(http, conversation_id, f"Count to {n + 2}.")
            statuses.append(status)
        return statuses

    async with asyncio.timeout(240):
        results = await asyncio.gather(*(converse() for _ in range(100)))
    refused = [s for statuses in results for s in statuses if s != 200]
    assert refused == []
