"""A turn refused part way through its launch leaves nothing behind.

The gateway app runs in this process on a real nats-server. Two real refusals
come late in the launch: the budget (after the Idempotency-Key was claimed, the
conversation reserved and the message recorded) and the publish (a request
bigger than one bus message). Everything done before must be taken back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from contracts import Limits
from contracts.subjects import KEYS_BUCKET
from services.runtime.bus import connect
from services.runtime.catalog import parse_catalog
from services.runtime.keys import KeyStore
from tests.integration.in_process import CATALOG, Gateway, running_gateway

ROOMY = parse_catalog(
    CATALOG
    + """
[models.roomy]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "roomy"
context_window = 2000000
"""
)
# Under every gateway limit, over NATS's 1 MB max_payload.
HUGE = "word " * 260_000


@pytest.fixture(scope="module")
async def gateway(nats_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(nats_url, ROOMY, request_deadline_s=1) as running:
        yield running


async def frugal_key(nats_url: str) -> dict[str, str]:
    """A key whose daily budget no request fits."""
    bus = await connect(nats_url, name="tests-frugal-key")
    try:
        keys = KeyStore(await bus.js.key_value(KEYS_BUCKET))
        issued = await keys.issue("frugal", "ada", limits=Limits(daily_tokens=10))
    finally:
        await bus.close()
    return {"Authorization": f"Bearer {issued.key}"}


async def test_a_conversation_message_refused_by_the_budget_is_taken_back(
    gateway: Gateway,
) -> None:
    auth = await frugal_key(gateway.nats_url)
    created = await gateway.http.post("/v1/conversations", json={}, headers=auth)
    conversation = created.json()["id"]
    path = f"/v1/conversations/{conversation}/messages"
    sent = {**auth, "Idempotency-Key": "launch-once"}

    refused = await gateway.http.post(path, json={"content": "Name a river."}, headers=sent)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"

    after = (await gateway.http.get(f"/v1/conversations/{conversation}", headers=auth)).json()
    assert (after["messages"], after["active_turn_id"]) == ([], None)
    # The key was let go too: another body under it is judged afresh, not 422 reused.
    again = await gateway.http.post(path, json={"content": "Name a lake."}, headers=sent)
    assert again.status_code == 429
    assert again.json()["error"]["code"] == "budget_exceeded"


async def test_a_completion_that_never_reached_the_bus_lets_its_key_go(gateway: Gateway) -> None:
    before = await gateway.requests_published()
    key = {"Idempotency-Key": "completion-once"}
    for text in (HUGE, HUGE + "?"):
        body = {"model": "roomy", "messages": [{"role": "user", "content": text}]}
        response = await gateway.http.post("/v1/chat/completions", json=body, headers=key)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
    assert await gateway.requests_published() == before


async def test_a_conversation_grown_past_one_bus_message_is_413_not_a_retryable_503(
    nats_url: str,
) -> None:
    async with running_gateway(nats_url, ROOMY, max_message_chars=2_000_000) as gateway:
        created = await gateway.http.post("/v1/conversations", json={"model": "roomy"})
        path = f"/v1/conversations/{created.json()['id']}/messages"
        refused = await gateway.http.post(path, json={"content": HUGE})
        assert refused.status_code == 413
        assert refused.json()["error"]["code"] == "request_too_large"
        assert "start a new one" in refused.json()["error"]["message"]
