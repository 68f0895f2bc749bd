"""Budgets and rate limits on the real stack, under concurrency."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from contracts import ChatMessage
from services.gateway.admission.gate import worst_case_prompt_tokens
from tests.support import Stack, issue_key, keys_command

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m"
PROMPT = "Name one colour."
MAX_TOKENS = 16
BODY = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS}
WORST_CASE = worst_case_prompt_tokens((ChatMessage(role="user", content=PROMPT),)) + MAX_TOKENS


def client_for(stack: Stack, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )


async def spent_tokens(http: httpx.AsyncClient) -> int:
    total = (await http.get("/v1/usage")).json()["total"]
    return int(total["input_tokens"]) + int(total["output_tokens"])


async def settled(http: httpx.AsyncClient, expected: int) -> int:
    """The tenant's usage once every completed turn has been metered."""
    async with asyncio.timeout(60):
        while (spent := await spent_tokens(http)) < expected:
            await asyncio.sleep(0.2)
    return spent


async def test_fifty_concurrent_requests_never_overspend_a_budget_for_ten(stack: Stack) -> None:
    limit = 10 * WORST_CASE
    _, key = issue_key(stack, f"t-{uuid.uuid4().hex[:10]}", "ada", "--daily-tokens", str(limit))
    async with client_for(stack, key) as http:
        answers = await asyncio.gather(
            *(http.post("/v1/chat/completions", json=BODY) for _ in range(50))
        )
        ok = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code == 429]
        assert len(ok) + len(refused) == 50, {a.status_code for a in answers}
        # Reservations of the worst case: at most ten can be in flight at once; the
        # usage service settling early turns to their (smaller) actual use can let a
        # few more in, never past the limit.
        assert 1 <= len(ok) <= 50
        assert refused, "a budget for ten let fifty through"
        for answer in refused:
            error = answer.json()["error"]
            assert error["code"] == "budget_exceeded"
            assert error["type"] == "rate_limit_error"
            assert int(answer.headers["retry-after"]) > 0
        used = sum(
            a.json()["usage"]["prompt_tokens"] + a.json()["usage"]["completion_tokens"] for a in ok
        )
        spent = await settled(http, used)
    assert spent == used
    assert spent <= limit, f"spent {spent} tokens against a daily limit of {limit}"


async def test_a_tenant_budget_binds_every_key_of_the_tenant(stack: Stack) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    done = keys_command(stack, "tenant-limits", tenant, "--daily-tokens", str(WORST_CASE))
    assert done.returncode == 0, done.stderr
    _, first = issue_key(stack, tenant, "ada")
    _, second = issue_key(stack, tenant, "bob")
    async with client_for(stack, first) as ada, client_for(stack, second) as bob:
        assert (await ada.post("/v1/chat/completions", json=BODY)).status_code == 200
        await settled(ada, 1)
        refused = await bob.post("/v1/chat/completions", json=BODY)
    assert refused.status_code == 429
    assert "tenant" in refused.json()["error"]["message"]


async def wait_for_a_fresh_minute() -> None:
    """Counting windows are clock minutes: start a test well inside one."""
    second = time.time() % 60
    if second > 40:
        await asyncio.sleep(61 - second)


async def test_requests_per_minute_headers_and_429(stack: Stack) -> None:
    _, key = issue_key(stack, f"t-{uuid.uuid4().hex[:10]}", "ada", "--rpm", "3")
    await wait_for_a_fresh_minute()
    async with client_for(stack, key) as http:
        listed = await http.get("/v1/models")
        answers = [await http.post("/v1/chat/completions", json=BODY) for _ in range(4)]
        missing = await http.get("/v1/conversations/conv-that-is-not-there")
    # Every response of the key says where it stands; only generation counts.
    assert listed.headers["x-ratelimit-remaining-requests"] == "3"
    assert missing.status_code == 404
    assert missing.headers["x-ratelimit-limit-requests"] == "3"
    assert missing.headers["x-ratelimit-remaining-requests"] == "0"
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0", "0"]
    for answer in answers:
        assert answer.headers["x-ratelimit-limit-requests"] == "3"
        assert answer.headers["x-ratelimit-reset-requests"].endswith("s")
    throttled = answers[-1]
    assert throttled.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(throttled.headers["retry-after"]) <= 60


async def test_tokens_per_minute_are_counted_on_streams_too(stack: Stack) -> None:
    _, key = issue_key(stack, f"t-{uuid.uuid4().hex[:10]}", "ada", "--tpm", str(2 * WORST_CASE + 1))
    await wait_for_a_fresh_minute()
    statuses, remaining = [], []
    async with client_for(stack, key) as http:
        for _ in range(3):
            async with http.stream(
                "POST", "/v1/chat/completions", json={**BODY, "stream": True}
            ) as response:
                statuses.append(response.status_code)
                remaining.append(response.headers.get("x-ratelimit-remaining-tokens"))
                await response.aread()
    assert statuses == [200, 200, 429]
    assert remaining[:2] == [str(WORST_CASE + 1), "1"]


async def test_a_refused_request_does_not_use_up_the_window(stack: Stack) -> None:
    _, key = issue_key(stack, f"t-{uuid.uuid4().hex[:10]}", "ada", "--rpm", "1")
    await wait_for_a_fresh_minute()
    async with client_for(stack, key) as http:
        first = await http.post("/v1/chat/completions", json=BODY)
        refused = [await http.post("/v1/chat/completions", json=BODY) for _ in range(3)]
    assert first.status_code == 200
    assert {r.status_code for r in refused} == {429}
    # Each refusal reports the window as the accepted requests left it.
    assert {r.headers["x-ratelimit-remaining-requests"] for r in refused} == {"0"}
