"""response_format on Anthropic models, as the openai SDK asks for it: JSON text back.

The adapter turns the format into one forced tool and streams that tool's input
back as the answer's text. On the scripted upstream (`tool_use_json`: one tool_use
block, its input in pieces) the exact Anthropic request and the relayed answer are
checked; on the real local model (llama.cpp's /v1/messages, which constrains a
forced tool's input by grammar) the answer must validate against the schema.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from jsonschema import validate
from openai import AsyncOpenAI
from pydantic import BaseModel

from tests.e2e.test_conversations import sse
from tests.faults.upstream import FaultyUpstream
from tests.support import Stack

pytestmark = pytest.mark.e2e

MODEL = "scripted-anthropic"
LOCAL = "smollm2-135m-anthropic"
CITY: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}
AS_CITY: Any = {
    "type": "json_schema",
    "json_schema": {"name": "city", "description": "A city", "schema": CITY, "strict": True},
}
ASK: list[Any] = [{"role": "user", "content": "Name a city in France and its country, as JSON."}]
ANSWER = {"city": "Paris", "country": "France"}


class City(BaseModel):
    city: str
    country: str


@pytest.fixture
async def scripted(anthropic_stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    async with anthropic_stack.openai() as sdk:
        yield sdk


async def test_a_json_schema_answer_comes_back_as_json_text_from_one_forced_tool(
    scripted: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "tool_use_json"})
    answer = await scripted.chat.completions.create(
        model=MODEL, messages=ASK, response_format=AS_CITY
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert choice.message.content is not None
    assert json.loads(choice.message.content) == ANSWER
    sent = upstream.bodies[-1]
    assert sent["tools"] == [
        {"name": "city", "description": "A city", "input_schema": CITY, "strict": True}
    ]
    assert sent["tool_choice"] == {
        "type": "tool",
        "name": "city",
        "disable_parallel_tool_use": True,
    }
    assert "output_config" not in sent


async def test_a_streamed_json_schema_answer_arrives_as_text_pieces_finishing_stop(
    scripted: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "tool_use_json"})
    stream = await scripted.chat.completions.create(
        model=MODEL, messages=ASK, response_format=AS_CITY, stream=True
    )
    pieces: list[str] = []
    finishes: list[str] = []
    async for chunk in stream:
        for choice in chunk.choices:
            assert not choice.delta.tool_calls
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason is not None:
                finishes.append(choice.finish_reason)
    assert len(pieces) > 1
    assert json.loads("".join(pieces)) == ANSWER
    assert finishes == ["stop"]


async def test_the_sdks_parse_helper_reads_the_answer_into_its_model(
    scripted: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "tool_use_json"})
    parsed = await scripted.chat.completions.parse(model=MODEL, messages=ASK, response_format=City)
    assert parsed.choices[0].message.parsed == City(**ANSWER)
    (tool,) = upstream.bodies[-1]["tools"]
    assert (tool["name"], tool["strict"]) == ("City", True)


async def test_json_object_forces_a_tool_that_takes_any_object(
    scripted: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "tool_use_json", "input": {"anything": [1, 2]}})
    answer = await scripted.chat.completions.create(
        model=MODEL, messages=ASK, response_format={"type": "json_object"}
    )
    assert json.loads(answer.choices[0].message.content or "") == {"anything": [1, 2]}
    (tool,) = upstream.bodies[-1]["tools"]
    assert (tool["name"], tool["input_schema"]) == ("json_answer", {"type": "object"})


async def test_response_format_with_tools_goes_as_claudes_native_format(
    scripted: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    tools: Any = [{"type": "function", "function": {"name": "get_time"}}]
    upstream.play({"kind": "tool_use_json", "input": {"zone": "UTC"}})
    answer = await scripted.chat.completions.create(
        model=MODEL, messages=ASK, response_format=AS_CITY, tools=tools
    )
    # The model chose the client's tool: a call, not an answer in the schema.
    (call,) = answer.choices[0].message.tool_calls or []
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_time",
        {"zone": "UTC"},
    )
    sent = upstream.bodies[-1]
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": CITY}}
    assert [t["name"] for t in sent["tools"]] == ["get_time"]


# The real local model, through llama.cpp's /v1/messages.


@pytest.fixture
async def local(stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    async with stack.openai() as sdk:
        yield sdk


async def test_the_local_models_anthropic_path_answers_json_that_fits_the_schema(
    local: AsyncOpenAI,
) -> None:
    answer = await local.chat.completions.create(
        model=LOCAL, messages=ASK, max_tokens=80, temperature=0, response_format=AS_CITY
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "stop"
    validate(json.loads(choice.message.content or ""), CITY)


async def test_the_local_models_anthropic_path_streams_json_that_fits_the_schema(
    local: AsyncOpenAI,
) -> None:
    stream = await local.chat.completions.create(
        model=LOCAL,
        messages=ASK,
        max_tokens=80,
        temperature=0,
        response_format=AS_CITY,
        stream=True,
    )
    text = ""
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    validate(json.loads(text), CITY)


async def test_an_anthropic_conversation_turn_answers_json_that_fits_the_schema(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=stack.auth, timeout=120
    ) as http:
        created = await http.post("/v1/conversations", json={"model": LOCAL})
        conversation_id = created.json()["id"]
        text = ""
        async with http.stream(
            "POST",
            f"/v1/conversations/{conversation_id}/messages",
            json={
                "content": ASK[0]["content"],
                "max_tokens": 80,
                "temperature": 0,
                "response_format": AS_CITY,
            },
        ) as response:
            assert response.status_code == 200, await response.aread()
            async for event in sse(response):
                if event.event == "delta":
                    text += event.data["text"]
                if event.event in {"done", "error"}:
                    assert event.event == "done", event.data
                    break
    validate(json.loads(text), CITY)
