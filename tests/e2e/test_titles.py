"""Conversation titles on the real stack: the titler, the `title` SSE event, renames."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest

from contracts.subjects import TURNS_STREAM
from tests.e2e.test_conversations import read, wait_for_answer
from tests.support import Stack, issue_key

pytestmark = pytest.mark.e2e

QUESTION = "How do I keep basil alive on a windowsill?"


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    # A tenant of its own: the usage by purpose below is this test's alone.
    _, key = issue_key(stack, f"t-{uuid.uuid4().hex[:10]}", "ada")
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=90
    ) as client:
        yield client


async def send(http: httpx.AsyncClient, conversation_id: str, content: str) -> list[Any]:
    async with http.stream(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": content, "max_tokens": 24},
    ) as response:
        assert response.status_code == 200
        return (await read(response)).events


async def title_events_on_the_bus(stack: Stack, conversation_id: str) -> int:
    nc = await nats.connect(stack.nats_url)
    try:
        info = await nc.jetstream().stream_info(
            TURNS_STREAM, subjects_filter=f"tokenbus.v1.turn.*.{conversation_id}.*.title"
        )
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()


async def test_the_first_exchange_gets_exactly_one_title_on_its_stream(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    conversation_id = (await http.post("/v1/conversations", json={})).json()["id"]
    events = await send(http, conversation_id, QUESTION)
    kinds = [e.event for e in events]
    assert kinds.count("title") == 1, kinds
    assert kinds.index("title") > kinds.index("done")
    title = next(e.data for e in events if e.event == "title")
    assert title["conversation_id"] == conversation_id
    assert title["source"] in {"model", "fallback"}
    assert 0 < len(title["title"]) <= 80
    assert "\n" not in title["title"]

    stored = (await http.get(f"/v1/conversations/{conversation_id}")).json()
    assert stored["title"] == title["title"]
    assert stored["title_source"] == title["source"]
    listed = {c["id"]: c for c in (await http.get("/v1/conversations")).json()["data"]}
    assert listed[conversation_id]["title"] == title["title"]

    # The next turn is not a first exchange: its stream ends at `done`, no second title.
    again = await send(http, conversation_id, "And in winter?")
    assert "title" not in [e.event for e in again]
    await wait_for_answer(http, conversation_id)
    assert await title_events_on_the_bus(stack, conversation_id) == 1

    # The titler's own tokens are metered, apart from the chat's.
    async with asyncio.timeout(30):
        while True:
            usage = (await http.get("/v1/usage", params={"group_by": "purpose"})).json()
            purposes = {row["purpose"]: row for row in usage["data"]}
            if "title" in purposes:
                break
            await asyncio.sleep(0.2)
    assert purposes["title"]["input_tokens"] > 0
    assert purposes["chat"]["turns"] == 2


async def test_a_users_title_is_never_replaced(stack: Stack, http: httpx.AsyncClient) -> None:
    conversation_id = (await http.post("/v1/conversations", json={"title": "Basil"})).json()["id"]
    events = await send(http, conversation_id, QUESTION)
    assert "title" not in [e.event for e in events]
    await wait_for_answer(http, conversation_id)
    stored = (await http.get(f"/v1/conversations/{conversation_id}")).json()
    assert (stored["title"], stored["title_source"]) == ("Basil", "user")
    assert await title_events_on_the_bus(stack, conversation_id) == 0


async def test_rename_after_the_model_named_it(http: httpx.AsyncClient) -> None:
    conversation_id = (await http.post("/v1/conversations", json={})).json()["id"]
    events = await send(http, conversation_id, QUESTION)
    assert "title" in [e.event for e in events]
    renamed = await http.patch(
        f"/v1/conversations/{conversation_id}", json={"title": "  Herbs   indoors "}
    )
    assert renamed.status_code == 200
    assert (renamed.json()["title"], renamed.json()["title_source"]) == ("Herbs indoors", "user")


@pytest.mark.parametrize(
    "body",
    [{"title": ""}, {"title": "x" * 201}, {"title": "two\nlines"}, {"title": 5}, {"name": "x"}],
)
async def test_bad_renames_are_refused(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    conversation_id = (await http.post("/v1/conversations", json={})).json()["id"]
    response = await http.patch(f"/v1/conversations/{conversation_id}", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
