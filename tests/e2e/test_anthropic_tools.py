"""Tools through the gateway and the generator's Anthropic adapter, as the openai SDK uses them.

The upstream is the scripted one speaking Anthropic's Messages API: a text block,
then two tool_use blocks (content blocks 1 and 2, calls 0 and 1) with their input
in input_json_delta pieces. `tokenbus up --upstream-provider anthropic` serves it
as the only model, so every hop between the two wire formats is checked exactly.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from tests.faults.upstream import FaultyUpstream
from tests.support import Stack

pytestmark = pytest.mark.e2e

MODEL = "scripted-anthropic"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": WEATHER_SCHEMA,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
        },
    },
]
ASK: list[Any] = [{"role": "user", "content": "Weather in Paris, and the time in UTC?"}]
CALLS = [
    ("toolu_w", "get_weather", {"city": "Paris"}),
    ("toolu_t", "get_time", {"zone": "UTC"}),
]


@pytest.fixture
async def client(anthropic_stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    async with anthropic_stack.openai() as sdk:
        yield sdk


@pytest.fixture
async def http(anthropic_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=anthropic_stack.gateway_url, headers=anthropic_stack.auth, timeout=30
    ) as h:
        yield h


def sent_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = body["tools"]
    return tools


async def test_two_streamed_tool_use_blocks_after_text_arrive_whole_through_the_sdks_helper(
    client: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "tool_use"})
    async with client.chat.completions.stream(
        model=MODEL,
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        stream_options={"include_usage": True},
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == CALLS
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (30, 12)
    sent = upstream.bodies[-1]
    assert sent_tools(sent) == [
        {"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER_SCHEMA},
        {"name": "get_time", "input_schema": TOOLS[1]["function"]["parameters"]},
    ]
    assert sent["tool_choice"] == {"type": "any"}


async def test_the_streamed_sse_numbers_the_calls_zero_and_one_in_valid_chunks(
    http: httpx.AsyncClient, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "tool_use"})
    body = {"model": MODEL, "messages": ASK, "tools": TOOLS, "stream": True}
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        data = [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    pieces = [
        call
        for chunk in chunks
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls") or []
    ]
    firsts = [(p["index"], p["id"], p["function"]["name"]) for p in pieces if "id" in p]
    assert firsts == [(0, "toolu_w", "get_weather"), (1, "toolu_t", "get_time")]
    arguments = ["".join(p["function"]["arguments"] for p in pieces if p["index"] == n)
                 for n in (0, 1)]  # fmt: skip
    assert [json.loads(a) for a in arguments] == [CALLS[0][2], CALLS[1][2]]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert [f for f in finishes if f is not None] == ["tool_calls"]


async def test_a_completion_with_a_named_choice_and_serial_calls_answers_with_both_calls(
    client: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "tool_use"})
    answer = await client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == CALLS
    assert upstream.bodies[-1]["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }


async def test_a_follow_up_sends_the_calls_as_tool_use_and_the_results_as_one_user_message(
    client: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "tool_use"}, {"kind": "ok", "tokens": 3})
    first = await client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS)
    called = first.choices[0].message
    history: list[Any] = [
        {"role": "system", "content": "Answer in one line."},
        *ASK,
        called.model_dump(include={"role", "content", "tool_calls"}, exclude_none=True),
        {"role": "tool", "tool_call_id": "toolu_w", "content": "18 C, sunny"},
        {"role": "tool", "tool_call_id": "toolu_t", "content": "12:00"},
    ]
    answer = await client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS)
    assert answer.choices[0].message.content == "tok0 tok1 tok2 "
    assert answer.choices[0].finish_reason == "stop"
    sent = upstream.bodies[-1]
    assert sent["system"] == "Answer in one line."
    assert sent["messages"] == [
        {"role": "user", "content": ASK[0]["content"]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                *({"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in CALLS),
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_w", "content": "18 C, sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_t", "content": "12:00"},
            ],
        },
    ]
    assert [t["name"] for t in sent_tools(sent)] == ["get_weather", "get_time"]


async def usage_total(http: httpx.AsyncClient) -> dict[str, Any]:
    total: dict[str, Any] = (await http.get("/v1/usage")).json()["total"]
    return total


async def test_a_turn_that_calls_tools_is_metered_with_the_providers_counts(
    client: AsyncOpenAI, http: httpx.AsyncClient, upstream: FaultyUpstream
) -> None:
    before = await usage_total(http)
    upstream.play({"kind": "tool_use"})
    await client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS)
    async with asyncio.timeout(20):
        while (after := await usage_total(http))["turns"] == before["turns"]:
            await asyncio.sleep(0.2)
    assert after["turns"] == before["turns"] + 1
    assert after["input_tokens"] - before["input_tokens"] == 30
    assert after["output_tokens"] - before["output_tokens"] == 12
