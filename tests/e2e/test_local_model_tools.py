"""Tool calls made by the real local model (llama.cpp + SmolLM2-135M), through the gateway.

llama.cpp reads the calls out of the model's `<tool_call>` output (the chat template
in services/runtime/smollm2_tools.jinja) and, for tool_choice "required", constrains
a started call by grammar to a listed name and arguments fitting its schema. A 135M
model decides *whether* to start a call by its prompt alone, so these tests use
temperature 0 and a question it answers with a call, and check structure, not words.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from anthropic import AsyncAnthropic

from tests.e2e.test_conversations import send_message
from tests.support import Stack

pytestmark = pytest.mark.e2e

OPENAI_PATH = "smollm2-135m"
ANTHROPIC_PATH = "smollm2-135m-anthropic"
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
QUESTION: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def client(stack: Stack) -> openai.AsyncOpenAI:
    return stack.openai()


def assert_fits_schema(name: str, arguments: str) -> None:
    assert name == "get_weather"
    parsed = json.loads(arguments)
    jsonschema.validate(parsed, WEATHER["function"]["parameters"])
    assert parsed["city"].strip()


async def ask(client: openai.AsyncOpenAI, model: str, messages: list[Any], **extra: Any) -> Any:
    return await client.chat.completions.create(
        model=model,
        messages=messages,
        tools=[WEATHER],
        temperature=0,
        max_tokens=120,
        **extra,
    )


async def check_required_call(client: openai.AsyncOpenAI, model: str) -> None:
    completion = await ask(client, model, QUESTION, tool_choice="required")
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls
    for call in calls:
        assert call.id
        assert_fits_schema(call.function.name, call.function.arguments)


async def check_streamed_required_call(client: openai.AsyncOpenAI, model: str) -> None:
    calls: dict[int, dict[str, str]] = {}
    finish = None
    stream = await ask(client, model, QUESTION, tool_choice="required", stream=True)
    async for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for piece in choice.delta.tool_calls or []:
                call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += piece.id or ""
                if piece.function is not None:
                    call["name"] += piece.function.name or ""
                    call["arguments"] += piece.function.arguments or ""
    assert finish == "tool_calls"
    assert calls
    for call in calls.values():
        assert call["id"]
        assert_fits_schema(call["name"], call["arguments"])


async def check_full_loop(client: openai.AsyncOpenAI, model: str) -> None:
    first = await ask(client, model, QUESTION, tool_choice="required")
    calls = first.choices[0].message.tool_calls
    assert calls
    history: list[Any] = [
        *QUESTION,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
                for call in calls
            ],
        },
        *(
            {
                "role": "tool",
                "tool_call_id": call.id,
                "content": json.dumps({"temperature_c": 18, "sky": "cloudy"}),
            }
            for call in calls
        ),
    ]
    final = await ask(client, model, history, tool_choice="auto")
    choice = final.choices[0]
    assert choice.finish_reason == "stop"
    assert not choice.message.tool_calls
    assert choice.message.content is not None
    assert choice.message.content.strip()


async def test_openai_path_answers_required_with_a_call_that_fits_the_schema(
    client: openai.AsyncOpenAI,
) -> None:
    await check_required_call(client, OPENAI_PATH)


async def test_openai_path_streams_a_required_call_that_fits_the_schema(
    client: openai.AsyncOpenAI,
) -> None:
    await check_streamed_required_call(client, OPENAI_PATH)


async def test_openai_path_answers_in_words_after_the_tool_result(
    client: openai.AsyncOpenAI,
) -> None:
    await check_full_loop(client, OPENAI_PATH)


async def test_anthropic_path_answers_required_with_a_call_that_fits_the_schema(
    client: openai.AsyncOpenAI,
) -> None:
    await check_required_call(client, ANTHROPIC_PATH)


async def test_anthropic_path_streams_a_required_call_that_fits_the_schema(
    client: openai.AsyncOpenAI,
) -> None:
    await check_streamed_required_call(client, ANTHROPIC_PATH)


async def test_anthropic_path_answers_in_words_after_the_tool_result(
    client: openai.AsyncOpenAI,
) -> None:
    await check_full_loop(client, ANTHROPIC_PATH)


async def test_a_full_tool_loop_in_a_conversation_with_the_real_model(stack: Stack) -> None:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=stack.auth, timeout=120
    ) as http:
        created = await http.post("/v1/conversations", json={"title": "w", "tools": [WEATHER]})
        conversation_id = created.json()["id"]
        first = await send_message(
            http,
            conversation_id,
            {
                "content": QUESTION[0]["content"],
                "tool_choice": "required",
                "temperature": 0,
                "max_tokens": 120,
            },
        )
        assert first[-1].data["finish_reason"] == "tool_calls"
        calls = [e.data for e in first if e.event == "tool_call"]
        assert calls
        for call in calls:
            assert_fits_schema(call["name"], call["arguments"])
        results = [{"tool_call_id": c["id"], "content": "Sunny, 21 C"} for c in calls]
        second = await send_message(
            http, conversation_id, {"tool_results": results, "temperature": 0, "max_tokens": 60}
        )
        assert second[-1].event == "done"
        assert second[-1].data["finish_reason"] in {"stop", "length"}
        assert "".join(e.data["text"] for e in second if e.event == "delta").strip()
        stored = (await http.get(f"/v1/conversations/{conversation_id}")).json()
        roles = [m["role"] for m in stored["messages"]]
        assert roles == ["user", "assistant", *["tool"] * len(calls), "assistant"]


ANTHROPIC_WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": WEATHER["function"]["description"],
    "input_schema": WEATHER["function"]["parameters"],
}


@pytest.mark.parametrize("model", [OPENAI_PATH, ANTHROPIC_PATH])
async def test_the_anthropic_sdk_gets_a_tool_use_from_either_path_created_or_streamed(
    stack: Stack, model: str
) -> None:
    async with AsyncAnthropic(
        base_url=stack.gateway_url, api_key=stack.api_key, max_retries=0
    ) as sdk:
        ask: dict[str, Any] = {
            "model": model,
            "max_tokens": 120,
            "messages": QUESTION,
            "tools": [ANTHROPIC_WEATHER],
            "tool_choice": {"type": "any"},
            # This SDK version has no temperature argument; the API still takes the field.
            "extra_body": {"temperature": 0},
        }
        created = await sdk.messages.create(**ask)
        async with sdk.messages.stream(**ask) as stream:
            streamed = await stream.get_final_message()
    for message in (created, streamed):
        assert message.stop_reason == "tool_use"
        uses = [block for block in message.content if block.type == "tool_use"]
        assert uses
        for use in uses:
            assert use.id
            assert_fits_schema(use.name, json.dumps(use.input))
