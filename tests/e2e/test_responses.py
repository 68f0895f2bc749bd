"""OpenAI's Responses API on the real stack, as the unmodified openai SDK calls it.

Text answers come from the real local model; the tool calls from the scripted
upstream (two interleaved calls), so their translation is checked exactly.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.responses import Response

from tests.faults.upstream import FaultyUpstream
from tests.support import Stack, issue_key

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m"
SCRIPTED = "scripted"
WEATHER: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
    {
        "type": "function",
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
        "strict": False,
    },
]


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    async with stack.openai() as sdk:
        yield sdk


@pytest.fixture
async def scripted(scripted_stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    async with scripted_stack.openai() as sdk:
        yield sdk


async def test_a_text_answer_comes_whole_from_responses_create(client: AsyncOpenAI) -> None:
    response = await client.responses.create(
        model=MODEL,
        input="Say hi.",
        instructions="You are concise.",
        max_output_tokens=16,
        metadata={"case": "create"},
    )
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status in ("completed", "incomplete")
    assert response.output_text
    assert [item.type for item in response.output] == ["message"]
    assert (response.instructions, response.metadata) == ("You are concise.", {"case": "create"})
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens > 0
    assert usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


async def test_a_streamed_answer_is_its_deltas_joined_and_every_event_is_numbered(
    client: AsyncOpenAI,
) -> None:
    deltas: list[str] = []
    kinds: list[str] = []
    numbers: list[int] = []
    ended: Response | None = None
    async with client.responses.stream(
        model=MODEL, input="Tell me about the sea.", max_output_tokens=24, store=False
    ) as stream:
        async for event in stream:
            kinds.append(event.type)
            numbers.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            # 24 tokens rarely end the answer: cut short is "incomplete", as OpenAI says it
            # (and the SDK's get_final_response() then has nothing, as with OpenAI).
            if event.type in ("response.completed", "response.incomplete"):
                ended = event.response
    assert ended is not None
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        f"response.{ended.status}",
    ]
    assert numbers == list(range(len(numbers)))
    assert deltas
    assert ended.output_text == "".join(deltas)
    assert ended.usage is not None
    assert ended.usage.output_tokens > 0


async def test_a_chain_of_three_responses_is_one_conversation(
    client: AsyncOpenAI, stack: Stack
) -> None:
    first = await client.responses.create(
        model=MODEL, input="My name is Ada.", max_output_tokens=12, temperature=0
    )
    second = await client.responses.create(
        model=MODEL,
        input="What is my name?",
        previous_response_id=first.id,
        max_output_tokens=12,
        temperature=0,
    )
    third = await client.responses.create(
        model=MODEL,
        input="Say it again.",
        previous_response_id=second.id,
        max_output_tokens=12,
        temperature=0,
    )
    # Each response is sent the history before it: the prompt grows turn by turn.
    tokens = [r.usage.input_tokens for r in (first, second, third) if r.usage is not None]
    assert len(tokens) == 3
    assert tokens[0] < tokens[1] < tokens[2]
    assert third.previous_response_id == second.id
    again = await client.responses.retrieve(third.id)
    # As it ended: cut at max_output_tokens, a stored response reads back incomplete too.
    assert (again.id, again.output_text, again.status) == (
        third.id,
        third.output_text,
        third.status,
    )
    assert again.incomplete_details == third.incomplete_details
    conversation_id = third.id.split("_")[1]
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.auth) as http:
        stored = (await http.get(f"/v1/conversations/{conversation_id}")).json()
    said = [(m["role"], m["content"]) for m in stored["messages"]]
    assert said[::2] == [
        ("user", "My name is Ada."),
        ("user", "What is my name?"),
        ("user", "Say it again."),
    ]
    assert [text for _, text in said[1::2]] == [
        first.output_text,
        second.output_text,
        third.output_text,
    ]


async def test_a_response_that_is_not_stored_cannot_be_read_or_continued(
    client: AsyncOpenAI,
) -> None:
    response = await client.responses.create(
        model=MODEL, input="Say hi.", max_output_tokens=4, store=False
    )
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError) as refused:
        await client.responses.create(
            model=MODEL, input="Again.", previous_response_id=response.id, max_output_tokens=4
        )
    assert refused.value.code == "response_not_found"


async def test_another_tenants_response_is_not_found(client: AsyncOpenAI, stack: Stack) -> None:
    mine = await client.responses.create(model=MODEL, input="Say hi.", max_output_tokens=4)
    _, key = issue_key(stack, f"t-{uuid.uuid4().hex[:10]}", "eve")
    async with AsyncOpenAI(base_url=f"{stack.gateway_url}/v1", api_key=key, max_retries=0) as other:
        with pytest.raises(openai.NotFoundError) as read:
            await other.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError) as continued:
            await other.responses.create(
                model=MODEL, input="And?", previous_response_id=mine.id, max_output_tokens=4
            )
    assert read.value.code == continued.value.code == "response_not_found"
    assert continued.value.param == "previous_response_id"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools.0"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools.0"),
        ({"max_tool_calls": 2}, "max_tool_calls"),
        ({"reasoning": {"effort": "high"}}, "reasoning"),
    ],
)
async def test_what_cannot_be_honoured_is_refused_by_name(
    client: AsyncOpenAI, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.create(model=MODEL, input="Search the web.", **extra)
    assert (refused.value.code, refused.value.param) == ("unsupported_parameter", param)
    body = refused.value.body
    assert isinstance(body, dict)
    assert param.split(".")[0] in body["message"]


async def test_function_calls_come_back_as_items_and_their_outputs_continue_the_chain(
    scripted: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "tool_calls"})
    asked = await scripted.responses.create(
        model=SCRIPTED,
        input="Weather in Paris, and the time in UTC?",
        tools=WEATHER,
        tool_choice="required",
    )
    calls = [item for item in asked.output if item.type == "function_call"]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("call_w", "get_weather", {"city": "Paris"}),
        ("call_t", "get_time", {"zone": "UTC"}),
    ]
    sent = upstream.bodies[-1]
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert sent["tool_choice"] == "required"

    upstream.play({"kind": "text", "text": "Sunny, and noon."})
    answered = await scripted.responses.create(
        model=SCRIPTED,
        previous_response_id=asked.id,
        input=[
            {"type": "function_call_output", "call_id": "call_w", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_t", "output": "12:00"},
        ],
        tools=WEATHER,
    )
    assert answered.output_text == "Sunny, and noon."
    history = upstream.bodies[-1]["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in history[1]["tool_calls"]] == ["call_w", "call_t"]
    assert [(m["tool_call_id"], m["content"]) for m in history[2:]] == [
        ("call_w", "sunny"),
        ("call_t", "12:00"),
    ]


async def test_streamed_function_calls_arrive_whole_through_the_sdks_stream_helper(
    scripted: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "tool_calls"})
    arguments: dict[str, str] = {}
    async with scripted.responses.stream(
        model=SCRIPTED, input="Weather in Paris?", tools=WEATHER, store=False
    ) as stream:
        async for event in stream:
            if event.type == "response.function_call_arguments.done":
                arguments[event.item_id] = event.arguments
        final = await stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.arguments) for c in calls] == [
        ("call_w", '{"city": "Paris"}'),
        ("call_t", '{"zone": "UTC"}'),
    ]
    assert arguments == {c.id: c.arguments for c in calls if c.id is not None}
    assert final.usage is not None
    assert final.usage.input_tokens == 30


async def test_an_output_that_answers_no_call_is_refused(scripted: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await scripted.responses.create(
            model=SCRIPTED,
            input=[{"type": "function_call_output", "call_id": "call_x", "output": "?"}],
        )
    assert refused.value.param == "input"
