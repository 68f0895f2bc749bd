"""Structured output validated at the boundary, through the unmodified openai SDK.

The scripted upstream answers exactly the text a step names (step `text`), so an
invalid then a valid answer can be scripted; one real-model case checks the mark
on a streamed answer of the local model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import openai
import pytest
from openai import AsyncOpenAI

from contracts.subjects import TURNS_STREAM
from tests.e2e.test_jobs import wait_for_job
from tests.faults.upstream import FaultyUpstream
from tests.support import Stack

pytestmark = pytest.mark.e2e

MODEL = "scripted"
CITY: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}
SCHEMA: Any = {
    "type": "json_schema",
    "json_schema": {"name": "city", "schema": CITY, "strict": True},
}
ASK: Any = [{"role": "user", "content": "A city in France and its country, as JSON."}]
VALID = '{"city": "Lyon", "country": "France"}'
# A marker that must never reach a log line.
INVALID = "Zanzibar-4411 is a lovely city"
MISFIT = '{"city": "Zanzibar-4411"}'


@pytest.fixture
async def client(scripted_stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    async with scripted_stack.openai() as sdk:
        yield sdk


async def usage_caught_up(stack: Stack) -> None:
    """Until the usage consumer has processed everything on the turns stream."""
    nc = await nats.connect(stack.nats_url)
    try:
        async with asyncio.timeout(30):
            while True:
                info = await nc.jetstream().consumer_info(TURNS_STREAM, "usage")
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    return
                await asyncio.sleep(0.2)
    finally:
        await nc.close()


async def retried_usage(stack: Stack) -> dict[str, int]:
    await usage_caught_up(stack)
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.auth) as http:
        response = await http.get("/v1/usage", params={"group_by": "purpose"})
    assert response.status_code == 200, response.text
    rows = [r for r in response.json()["data"] if r["purpose"] == "structured_retry"]
    return rows[0] if rows else {"input_tokens": 0, "output_tokens": 0, "turns": 0}


def assert_feedback(retry: dict[str, Any], invalid: str, says: str) -> None:
    """The second request: the original ask, the invalid answer, then what was wrong."""
    messages = retry["messages"]
    assert messages[0]["content"] == ASK[0]["content"]
    assert messages[-2] == {"role": "assistant", "content": invalid}
    assert messages[-1]["role"] == "user"
    assert says in messages[-1]["content"]
    assert retry["response_format"] == SCHEMA


def logs_hold(stack: Stack, text: str) -> bool:
    logs = stack.state_dir / "logs"
    return any(text in path.read_text(errors="replace") for path in logs.glob("*.log"))


async def test_a_non_streamed_answer_that_fails_is_asked_again_and_metered_with_both_calls(
    client: AsyncOpenAI, upstream: FaultyUpstream, scripted_stack: Stack
) -> None:
    before = await retried_usage(scripted_stack)
    upstream.play({"kind": "text", "text": INVALID}, {"kind": "text", "text": VALID})
    calls = len(upstream.bodies)

    answer = await client.chat.completions.create(model=MODEL, messages=ASK, response_format=SCHEMA)

    assert answer.choices[0].message.content == VALID
    assert answer.choices[0].finish_reason == "stop"
    assert (answer.model_extra or {})["tokenbus"] == {"output_valid": True}
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (14, 6)
    assert len(upstream.bodies) == calls + 2
    assert_feedback(upstream.bodies[-1], INVALID, "The answer is not JSON")
    after = await retried_usage(scripted_stack)
    grown = {k: after[k] - before[k] for k in ("input_tokens", "output_tokens", "turns")}
    assert grown == {"input_tokens": 14, "output_tokens": 6, "turns": 1}
    assert not logs_hold(scripted_stack, "Zanzibar")


async def test_an_answer_that_fails_twice_is_a_502_invalid_output_with_the_validators_message(
    client: AsyncOpenAI, upstream: FaultyUpstream, scripted_stack: Stack
) -> None:
    upstream.play({"kind": "text", "text": INVALID}, {"kind": "text", "text": MISFIT})

    with pytest.raises(openai.InternalServerError) as raised:
        await client.chat.completions.create(model=MODEL, messages=ASK, response_format=SCHEMA)

    assert raised.value.status_code == 502
    error = raised.value.body
    assert isinstance(error, dict)
    assert error["code"] == "invalid_output"
    assert error["message"] == (
        "The model's answer did not fit the response_format (asked 2 times). "
        "The answer does not fit the schema at $: 'country' is a required property"
    )
    assert_feedback(upstream.bodies[-1], INVALID, "The answer is not JSON")
    assert not logs_hold(scripted_stack, "Zanzibar")


async def test_a_streamed_answer_that_fails_is_passed_through_and_its_last_chunk_says_so(
    client: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "text", "text": MISFIT})
    calls = len(upstream.bodies)

    stream = await client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        response_format=SCHEMA,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, marks, finish = "", [], None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if (chunk.model_extra or {}).get("tokenbus") is not None:
            marks.append((chunk.choices[0].finish_reason, chunk.model_extra["tokenbus"]))  # type: ignore[index]

    assert text == MISFIT
    assert finish == "stop"
    assert marks == [
        (
            "stop",
            {
                "output_valid": False,
                "output_error": "The answer does not fit the schema at $: "
                "'country' is a required property",
            },
        )
    ]
    assert len(upstream.bodies) == calls + 1  # a streamed answer is never asked again


async def test_a_streamed_answer_that_fits_is_marked_valid_through_the_stream_helper(
    client: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "text", "text": VALID})
    async with client.chat.completions.stream(
        model=MODEL, messages=ASK, response_format=SCHEMA
    ) as stream:
        last = None
        async for event in stream:
            if event.type == "chunk":
                last = event.chunk
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == VALID
    assert last is not None
    assert (last.model_extra or {})["tokenbus"] == {"output_valid": True}


def _ended(job: dict[str, Any]) -> bool:
    return job["status"] not in ("queued", "running")


async def test_a_job_whose_answer_fails_is_asked_again_and_completes_with_the_valid_one(
    upstream: FaultyUpstream, scripted_stack: Stack
) -> None:
    upstream.play({"kind": "text", "text": MISFIT}, {"kind": "text", "text": VALID})
    async with httpx.AsyncClient(
        base_url=scripted_stack.gateway_url, headers=scripted_stack.auth, timeout=10
    ) as http:
        submitted = await http.post(
            "/v1/jobs", json={"model": MODEL, "messages": ASK, "response_format": SCHEMA}
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
    job = await wait_for_job(scripted_stack, job_id, _ended, timeout=30)
    assert job["status"] == "completed", job
    assert job["result"]["choices"][0]["message"]["content"] == VALID
    assert job["result"]["usage"]["completion_tokens"] == 6
    assert job["result"]["tokenbus"]["output_valid"] is True
    assert_feedback(upstream.bodies[-1], MISFIT, "'country' is a required property")


async def test_a_job_that_fails_twice_ends_failed_with_invalid_output(
    upstream: FaultyUpstream, scripted_stack: Stack
) -> None:
    upstream.play({"kind": "text", "text": INVALID}, {"kind": "text", "text": "[]"})
    async with httpx.AsyncClient(
        base_url=scripted_stack.gateway_url, headers=scripted_stack.auth, timeout=10
    ) as http:
        submitted = await http.post(
            "/v1/jobs",
            json={"model": MODEL, "messages": ASK, "response_format": {"type": "json_object"}},
        )
        job_id = submitted.json()["id"]
    job = await wait_for_job(scripted_stack, job_id, _ended, timeout=30)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "invalid_output"
    assert "not an object (it is an array)" in job["error"]["message"]


async def test_a_streamed_json_schema_answer_of_the_real_model_is_marked_valid(
    stack: Stack,
) -> None:
    async with stack.openai() as sdk:
        stream = await sdk.chat.completions.create(
            model="smollm2-135m",
            messages=ASK,
            max_tokens=60,
            temperature=0,
            stream=True,
            response_format=SCHEMA,
        )
        text, mark = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                if chunk.choices[0].finish_reason is not None:
                    mark = (chunk.model_extra or {}).get("tokenbus")
    json.loads(text)
    assert mark == {"output_valid": True}, text
