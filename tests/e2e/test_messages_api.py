"""POST /v1/messages through the unmodified `anthropic` SDK, for models of either provider.

Text answers come from the real local model, reached both ways (`smollm2-135m`
through llama.cpp's OpenAI endpoint, `smollm2-135m-anthropic` through its
Messages endpoint). Tool calls, which a 135M model makes unreliably, come from
the scripted upstream speaking OpenAI's wire format (two interleaved calls) and
Anthropic's (a text block, then two tool_use blocks), so every hop between the
formats is checked exactly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic import AsyncAnthropic

from tests.e2e.conftest import SCRIPTED_ANTHROPIC_MODEL, SCRIPTED_MODEL
from tests.faults.upstream import FaultyUpstream
from tests.support import Stack

pytestmark = pytest.mark.e2e

ASK: list[Any] = [{"role": "user", "content": "Name one colour."}]
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
]
CALLS = [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "UTC"})]


def sdk(stack: Stack) -> AsyncAnthropic:
    """Anthropic's SDK as a user points it at the gateway: the key goes as x-api-key."""
    return AsyncAnthropic(base_url=stack.gateway_url, api_key=stack.api_key, max_retries=0)


@pytest.fixture
async def local(stack: Stack) -> AsyncIterator[AsyncAnthropic]:
    async with sdk(stack) as client:
        yield client


@pytest.mark.parametrize("model", ["smollm2-135m", "smollm2-135m-anthropic"])
async def test_a_message_is_answered_by_either_provider(local: AsyncAnthropic, model: str) -> None:
    message = await local.messages.create(model=model, max_tokens=24, messages=ASK)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == model
    assert message.id.startswith("msg_")
    (block,) = message.content
    assert block.type == "text"
    assert block.text.strip()
    assert message.stop_reason in {"end_turn", "max_tokens"}
    assert message.usage.input_tokens > 0
    assert 0 < message.usage.output_tokens <= 24


@pytest.mark.parametrize("model", ["smollm2-135m", "smollm2-135m-anthropic"])
async def test_a_streamed_message_arrives_as_anthropics_events(
    local: AsyncAnthropic, model: str
) -> None:
    async with local.messages.stream(
        model=model, max_tokens=24, messages=ASK, system="Answer in one word."
    ) as stream:
        kinds = []
        pieces = []
        async for event in stream:
            kinds.append(event.type)
            if event.type == "text":
                pieces.append(event.text)
        final = await stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert "content_block_start" in kinds
    assert "content_block_stop" in kinds
    (block,) = final.content
    assert block.type == "text"
    assert block.text
    assert block.text == "".join(pieces)
    assert final.stop_reason in {"end_turn", "max_tokens"}
    assert final.usage.input_tokens > 0
    assert final.usage.output_tokens > 0


async def test_count_tokens_gives_the_budget_estimate(local: AsyncAnthropic) -> None:
    counted = await local.messages.count_tokens(model="smollm2-135m", messages=ASK)
    longer = await local.messages.count_tokens(
        model="smollm2-135m", messages=ASK, system="You are a careful assistant. " * 20
    )
    assert 0 < counted.input_tokens < longer.input_tokens


async def test_bad_input_is_refused_in_anthropics_error_shape(
    stack: Stack, local: AsyncAnthropic
) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        await local.messages.create(
            model="smollm2-135m", max_tokens=10, messages=ASK, extra_body={"top_k": 5}
        )
    assert refused.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "top_k: top_k is not supported; use temperature or top_p.",
            "code": "unsupported_parameter",
            "param": "top_k",
        },
    }
    with pytest.raises(anthropic.NotFoundError):
        await local.messages.create(model="no-such-model", max_tokens=10, messages=ASK)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        missing = await http.post(
            "/v1/messages",
            headers={"x-api-key": stack.api_key},
            json={"model": "smollm2-135m", "messages": ASK},
        )
        nobody = await http.post(
            "/v1/messages", json={"model": "smollm2-135m", "max_tokens": 5, "messages": ASK}
        )
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "max_tokens"
    assert missing.json()["type"] == "error"
    assert nobody.status_code == 401
    assert nobody.json()["error"]["type"] == "authentication_error"


def tool_uses(content: list[Any]) -> list[tuple[str, Any]]:
    return [(b.name, b.input) for b in content if b.type == "tool_use"]


@pytest.mark.parametrize(
    ("stack_fixture", "model", "step"),
    [
        ("scripted_stack", SCRIPTED_MODEL, "tool_calls"),
        ("anthropic_stack", SCRIPTED_ANTHROPIC_MODEL, "tool_use"),
    ],
)
async def test_tool_calls_arrive_as_tool_use_blocks_streamed_or_not(
    request: pytest.FixtureRequest,
    upstream: FaultyUpstream,
    stack_fixture: str,
    model: str,
    step: str,
) -> None:
    stack: Stack = request.getfixturevalue(stack_fixture)
    async with sdk(stack) as client:
        upstream.play({"kind": step})
        message = await client.messages.create(
            model=model, max_tokens=100, messages=ASK, tools=TOOLS
        )
        upstream.play({"kind": step})
        async with client.messages.stream(
            model=model, max_tokens=100, messages=ASK, tools=TOOLS
        ) as stream:
            pieces = [e.partial_json async for e in stream if e.type == "input_json"]
            final = await stream.get_final_message()
    # The first call's input streams in its pieces; the interleaved second one comes whole.
    assert pieces == ['{"city": ', '"Paris"}', '{"zone": "UTC"}']
    for answer in (message, final):
        assert answer.stop_reason == "tool_use"
        assert tool_uses(answer.content) == CALLS
        assert all(b.id for b in answer.content if b.type == "tool_use")


async def test_a_tool_result_goes_back_to_the_model_as_its_answer(
    scripted_stack: Stack, upstream: FaultyUpstream
) -> None:
    history: list[Any] = [
        ASK[0],
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C, sunny"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]  # fmt: skip
    upstream.play({"kind": "text", "text": "Sunny."})
    async with sdk(scripted_stack) as client:
        message = await client.messages.create(
            model=SCRIPTED_MODEL,
            max_tokens=50,
            messages=history,
            tools=TOOLS,
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
        )
    assert [b.text for b in message.content if b.type == "text"] == ["Sunny."]
    sent = upstream.bodies[-1]
    assert sent["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18 C, sunny"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", False)


async def read_stream(client: AsyncAnthropic) -> None:
    async with client.messages.stream(model=SCRIPTED_MODEL, max_tokens=20, messages=ASK) as stream:
        async for _ in stream:
            pass


async def test_a_failed_turn_ends_as_anthropics_error_streamed_or_not(
    scripted_stack: Stack, upstream: FaultyUpstream
) -> None:
    secret = "upstream says no: org-1234 key sk-live-abc"
    refusal = {"kind": "status", "status": 400, "message": secret}
    async with sdk(scripted_stack) as client:
        upstream.play(refusal)
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.create(model=SCRIPTED_MODEL, max_tokens=20, messages=ASK)
        upstream.play(refusal)
        with pytest.raises(anthropic.APIStatusError) as ended:
            await read_stream(client)
    body = refused.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    # The provider's own words (keys, account ids) never reach the client.
    assert "sk-live" not in str(body)
    assert "sk-live" not in str(ended.value)
    assert "invalid_request" in str(ended.value.body)
