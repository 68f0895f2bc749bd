"""Tools through the gateway, the bus and the generator, as the openai SDK uses them.

The upstream is the scripted one speaking OpenAI's wire format (two interleaved
calls in one streamed answer), so the translation on every hop is checked
exactly; `tokenbus up --upstream-url` serves it as the only model.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from tests.faults.upstream import FaultyUpstream
from tests.support import Stack

pytestmark = pytest.mark.e2e

MODEL = "scripted"
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
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


@pytest.fixture
async def client(scripted_stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    async with scripted_stack.openai() as sdk:
        yield sdk


def last_body(upstream: FaultyUpstream) -> dict[str, Any]:
    return upstream.bodies[-1]


async def test_streamed_tool_calls_arrive_whole_through_the_sdks_stream_helper(
    client: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "tool_calls"})
    async with client.chat.completions.stream(
        model=MODEL,
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=True,
        stream_options={"include_usage": True},
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_w", "get_weather", {"city": "Paris"}),
        ("call_t", "get_time", {"zone": "UTC"}),
    ]
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (30, 12)
    sent = last_body(upstream)
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", True)


async def test_a_completion_that_calls_tools_answers_with_tool_calls_and_null_content(
    client: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "tool_calls"})
    answer = await client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert [c.function.name for c in choice.message.tool_calls or []] == ["get_weather", "get_time"]
    assert last_body(upstream)["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }


async def test_a_history_with_calls_and_their_results_reaches_the_model_as_sent(
    client: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "ok", "tokens": 3})
    history: list[Any] = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_w", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "call_t", "type": "function",
                 "function": {"name": "get_time", "arguments": '{"zone": "UTC"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_w", "content": "18 C, sunny"},
        {"role": "tool", "tool_call_id": "call_t", "content": "12:00"},
    ]  # fmt: skip
    answer = await client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS)
    assert answer.choices[0].message.content == "tok0 tok1 tok2 "
    sent = last_body(upstream)["messages"]
    assert sent[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": history[1]["tool_calls"],
    }
    assert sent[2:] == history[2:]


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [], "tool_choice": "required"}, "tool_choice"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0"),
        ({"messages": [{"role": "user", "content": None}]}, "messages.0"),
        ({"tools": [TOOLS[0], TOOLS[0]]}, "tools"),
        (
            {"messages": [*ASK, {"role": "tool", "tool_call_id": "call_x", "content": "r"}]},
            "messages",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "string"}},
                    }
                ]
            },
            "tools.0",
        ),
    ],
)
async def test_tool_fields_that_cannot_be_right_are_refused_with_400_naming_them(
    scripted_stack: Stack, change: dict[str, Any], param: str
) -> None:
    body = {"model": MODEL, "messages": ASK, "tools": TOOLS, **change}
    async with httpx.AsyncClient(
        base_url=scripted_stack.gateway_url, headers=scripted_stack.auth
    ) as h:
        response = await h.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_value"
    assert error["param"].startswith(param)
