"""Usage totals on the real stack: exact, even across a kill -9 of the usage service."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import orjson
import pytest

from contracts import TurnUsage, new_id
from contracts.subjects import (
    DEADLETTER_STREAM,
    TURNS_STREAM,
    deadletter_subject,
    turn_event_subject,
)
from tests.support import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=stack.auth, timeout=120
    ) as client:
        yield client


async def caught_up(stack: Stack) -> None:
    """Until the usage consumer has processed and acked everything on the stream."""
    nc = await nats.connect(stack.nats_url)
    try:
        async with asyncio.timeout(60):
            while True:
                try:
                    info = await nc.jetstream().consumer_info(TURNS_STREAM, "usage")
                except Exception:  # restarting: the consumer answers again shortly
                    info = None
                if info is not None and info.num_pending == 0 and info.num_ack_pending == 0:
                    return
                await asyncio.sleep(0.2)
    finally:
        await nc.close()


async def totals(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/v1/usage", params={"group_by": "model"})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body["total"]


async def test_totals_equal_the_generated_usage_after_the_usage_service_is_killed(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    await caught_up(stack)
    before = await totals(http)

    async def ask(n: int) -> dict[str, int]:
        response = await http.post(
            "/v1/chat/completions",
            json={
                "model": "smollm2-135m",
                "messages": [{"role": "user", "content": f"Say a number above {n}."}],
                "max_tokens": 8,
            },
        )
        assert response.status_code == 200
        usage: dict[str, int] = response.json()["usage"]
        return usage

    requests = [asyncio.create_task(ask(n)) for n in range(12)]
    await asyncio.sleep(0.3)
    os.kill(stack.pid("usage"), signal.SIGKILL)  # mid-load; tokenbus up restarts it
    usages = await asyncio.gather(*requests)

    await asyncio.sleep(1.0)
    await caught_up(stack)
    after = await totals(http)
    assert after["turns"] - before["turns"] == len(usages)
    assert after["input_tokens"] - before["input_tokens"] == sum(u["prompt_tokens"] for u in usages)
    assert after["output_tokens"] - before["output_tokens"] == sum(
        u["completion_tokens"] for u in usages
    )


@pytest.mark.parametrize(
    "params",
    [
        {"from": "yesterday"},
        {"group_by": "tenant"},
        {"group_by": "model,model"},
        {"from": "2026-11-30", "to": "2026-11-01"},
    ],
)
async def test_bad_usage_queries_get_a_clean_400(
    http: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await http.get("/v1/usage", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_value"


async def test_a_usage_event_that_breaks_the_contract_is_dead_lettered_and_counts_nothing(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    await caught_up(stack)
    before = await totals(http)
    marker = new_id()
    bad = TurnUsage(
        correlation_id=marker,
        conversation_id="c",
        turn_id=marker,
        seq=1,
        tenant_id="dev",  # the dev key's tenant: these totals would show it
        user_id="dev",
        model="smollm2-135m",
        provider_model="smollm2-135m",
        input_tokens=1_000_000,
        output_tokens=1,
    ).model_dump(mode="json")
    bad["output_tokens"] = -5  # a producer with a bug
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        await js.publish(turn_event_subject("gw", "c", marker, "usage"), orjson.dumps(bad))
        sub = await js.subscribe(
            deadletter_subject("usage"), stream=DEADLETTER_STREAM, ordered_consumer=True
        )
        letters: list[str] = []
        async with asyncio.timeout(30):
            while not any(marker in letter for letter in letters):
                letters.append((await sub.next_msg(timeout=25)).data.decode())
        await sub.unsubscribe()
    finally:
        await nc.close()
    letter = next(letter for letter in letters if marker in letter)
    assert "contract violation" in letter
    assert "output_tokens" in letter
    await caught_up(stack)
    assert await totals(http) == before
