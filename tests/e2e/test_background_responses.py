"""Background responses, streamed again, cancelled and deleted, as the openai SDK calls them.

The answers come from the real local model. "Another gateway" is a second
gateway process on the same bus, which never saw the request.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.responses import Response, ResponseStreamEvent

from tests.e2e.test_cancellation import LONG_PROMPT, settled_predicted_tokens
from tests.support import Stack, extra_gateway, issue_key

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m"
ENDED = {"completed", "incomplete", "failed", "cancelled"}


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    async with stack.openai() as sdk:
        yield sdk


@pytest.fixture
def other_gateway(stack: Stack) -> Any:
    with extra_gateway(stack) as url:
        yield url


def sdk_at(stack: Stack, url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{url}/v1", api_key=stack.api_key, max_retries=0)


async def polled(sdk: AsyncOpenAI, response_id: str, timeout: float = 60.0) -> Response:
    deadline = time.monotonic() + timeout
    while True:
        response = await sdk.responses.retrieve(response_id)
        if response.status in ENDED:
            return response
        assert time.monotonic() < deadline, f"still {response.status}"
        await asyncio.sleep(0.2)


async def events_of(stream: Any) -> list[ResponseStreamEvent]:
    return [event async for event in stream]


def text_of(events: list[ResponseStreamEvent]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


async def test_a_background_response_is_queued_then_polled_to_its_end_on_another_gateway(
    stack: Stack, client: AsyncOpenAI, other_gateway: str
) -> None:
    queued = await client.responses.create(
        model=MODEL, input="Say hi.", background=True, max_output_tokens=24, temperature=0
    )
    assert (queued.status, queued.background) == ("queued", True)
    assert queued.output == []
    async with sdk_at(stack, other_gateway) as elsewhere:
        done = await polled(elsewhere, queued.id)
    assert done.status in ("completed", "incomplete")
    assert done.background is True
    assert done.output_text
    assert done.usage is not None
    assert done.usage.output_tokens > 0
    # The SDK's stream helper attaches to a response by id, as it does at OpenAI.
    async with client.responses.stream(response_id=queued.id) as again:
        events = [event async for event in again]
    assert events[0].type == "response.created"
    replayed = events[-1].response  # type: ignore[union-attr]
    assert (replayed.id, replayed.status, replayed.output_text) == (
        done.id,
        done.status,
        done.output_text,
    )


async def test_a_background_stream_left_midway_resumes_after_event_n_on_another_gateway(
    stack: Stack, client: AsyncOpenAI, other_gateway: str
) -> None:
    stream = await client.responses.create(
        model=MODEL,
        input="Name three colours.",
        background=True,
        stream=True,
        max_output_tokens=40,
        temperature=0,
    )
    head: list[ResponseStreamEvent] = []
    async for event in stream:
        head.append(event)
        if event.type == "response.output_text.delta" and len(text_of(head)) > 3:
            break
    await stream.close()  # leaving a background stream does not stop the response
    response_id = head[0].response.id  # type: ignore[union-attr]
    last = head[-1].sequence_number
    async with sdk_at(stack, other_gateway) as elsewhere:
        tail = await events_of(
            await elsewhere.responses.retrieve(response_id, stream=True, starting_after=last)
        )
        whole = await events_of(await elsewhere.responses.retrieve(response_id, stream=True))
    assert [e.sequence_number for e in tail] == list(range(last + 1, last + 1 + len(tail)))
    assert tail[-1].type in ("response.completed", "response.incomplete")
    final = tail[-1].response  # type: ignore[union-attr]
    assert final.output_text == text_of(head) + text_of(tail)
    # The replay is the same stream: numbered, typed and worded alike.
    assert [(e.sequence_number, e.type) for e in whole] == [
        (e.sequence_number, e.type) for e in head + tail
    ]
    assert text_of(whole) == final.output_text


async def test_starting_after_is_checked_against_an_ended_stream(
    client: AsyncOpenAI,
) -> None:
    done = await client.responses.create(model=MODEL, input="Say hi.", max_output_tokens=8)
    events = await events_of(await client.responses.retrieve(done.id, stream=True))
    last = events[-1].sequence_number
    assert events[-1].type in ("response.completed", "response.incomplete")
    nothing = await events_of(
        await client.responses.retrieve(done.id, stream=True, starting_after=last)
    )
    assert nothing == []
    with pytest.raises(openai.BadRequestError) as beyond:
        await client.responses.retrieve(done.id, stream=True, starting_after=last + 1)
    assert (beyond.value.code, beyond.value.param) == ("invalid_value", "starting_after")
    with pytest.raises(openai.BadRequestError) as unstreamed:
        await client.responses.retrieve(done.id, starting_after=1)
    assert unstreamed.value.param == "starting_after"
    with pytest.raises(openai.BadRequestError) as include:
        await client.responses.retrieve(done.id, include=["message.output_text.logprobs"])
    assert include.value.param == "include"


async def test_cancel_stops_a_running_background_response_at_the_model(
    stack: Stack, client: AsyncOpenAI
) -> None:
    before = await settled_predicted_tokens(stack)
    queued = await client.responses.create(
        model=MODEL, input=LONG_PROMPT, background=True, max_output_tokens=300, temperature=0
    )
    stream = await client.responses.retrieve(queued.id, stream=True)
    async for event in stream:
        if event.type == "response.output_text.delta":
            break
    await stream.close()
    cancelled = await client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    generated = await settled_predicted_tokens(stack) - before
    assert generated < 150, f"the model went on: {generated} tokens"
    assert (await client.responses.retrieve(queued.id)).status == "cancelled"
    again = await client.responses.cancel(queued.id)  # a second cancel changes nothing
    assert (again.status, again.output_text) == ("cancelled", cancelled.output_text)


async def test_delete_takes_a_response_away_and_only_the_owner_can(
    stack: Stack, client: AsyncOpenAI
) -> None:
    first = await client.responses.create(model=MODEL, input="Say hi.", max_output_tokens=8)
    second = await client.responses.create(
        model=MODEL, input="And again.", previous_response_id=first.id, max_output_tokens=8
    )
    _, key = issue_key(stack, f"t-{uuid.uuid4().hex[:10]}", "eve")
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        theirs = await http.delete(
            f"/v1/responses/{second.id}", headers={"Authorization": f"Bearer {key}"}
        )
        assert theirs.status_code == 404
        assert theirs.json()["error"]["code"] == "response_not_found"
        gone = await http.delete(f"/v1/responses/{second.id}", headers=stack.auth)
        assert gone.status_code == 200
        assert gone.json() == {"id": second.id, "object": "response", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(second.id, stream=True)
    # The first is still there.
    assert (await client.responses.retrieve(first.id)).output_text == first.output_text
    await client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError) as continued:
        await client.responses.create(
            model=MODEL, input="More.", previous_response_id=first.id, max_output_tokens=4
        )
    assert continued.value.param == "previous_response_id"


async def test_a_background_response_that_is_not_stored_is_refused(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.create(model=MODEL, input="Hi", background=True, store=False)
    assert (refused.value.code, refused.value.param) == ("invalid_value", "background")
