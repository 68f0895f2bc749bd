"""Tools on Anthropic's Messages API: the request from OpenAI's shape, the stream back."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import ChatMessage, ChatRequest, FunctionTool, ToolCall, ToolCallDelta, ToolChoice
from services.generator.adapters.anthropic_provider import MessagesEvent, ToolUseBlocks
from services.generator.adapters.anthropic_request import to_anthropic_messages, tool_fields
from services.generator.errors import ProviderError

WEATHER = FunctionTool(
    name="get_weather",
    description="Weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
CLOCK = FunctionTool(name="get_time")


def request(**fields: Any) -> ChatRequest:
    return ChatRequest(
        correlation_id="c",
        gateway_id="gw",
        conversation_id="conv",
        turn_id="turn",
        model="m",
        messages=(ChatMessage(role="user", content="hi"),),
        **fields,
    )


def test_tools_become_anthropic_tools_with_their_schema_as_input_schema() -> None:
    fields = tool_fields(request(tools=(WEATHER, CLOCK)))
    assert fields == {
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather in a city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
        ]
    }


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        (ToolChoice(mode="auto"), None, {"type": "auto"}),
        (ToolChoice(mode="required"), None, {"type": "any"}),
        (
            ToolChoice(mode="function", name="get_weather"),
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (ToolChoice(mode="none"), None, {"type": "none"}),
        (ToolChoice(mode="required"), False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            ToolChoice(mode="function", name="get_weather"),
            False,
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (ToolChoice(mode="none"), False, {"type": "none"}),
        (ToolChoice(mode="auto"), True, {"type": "auto"}),
    ],
)
def test_tool_choice_and_parallel_tool_calls_map_onto_anthropics_tool_choice(
    choice: ToolChoice | None, parallel: bool | None, expected: dict[str, Any]
) -> None:
    fields = tool_fields(
        request(tools=(WEATHER,), tool_choice=choice, parallel_tool_calls=parallel)
    )
    assert fields["tool_choice"] == expected


def test_no_tool_choice_is_sent_when_the_provider_default_will_do() -> None:
    assert "tool_choice" not in tool_fields(request(tools=(WEATHER,)))
    assert "tool_choice" not in tool_fields(request(tools=(WEATHER,), parallel_tool_calls=True))


def test_a_request_without_tools_sends_no_tool_fields() -> None:
    assert tool_fields(request(tool_choice=ToolChoice(mode="none"))) == {}


def test_calls_and_their_results_become_tool_use_and_one_user_message_of_tool_results() -> None:
    system, turns = to_anthropic_messages(
        (
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content="Weather in Paris, and the time?"),
            ChatMessage(
                role="assistant",
                content="Let me check.",
                tool_calls=(
                    ToolCall(id="toolu_w", name="get_weather", arguments='{"city": "Paris"}'),
                    ToolCall(id="toolu_t", name="get_time", arguments=""),
                ),
            ),
            ChatMessage(role="tool", tool_call_id="toolu_w", content="18 C"),
            ChatMessage(role="tool", tool_call_id="toolu_t", content="12:00"),
            ChatMessage(role="user", content="And tomorrow?"),
        )
    )
    assert system == "Be brief."
    assert turns == [
        {"role": "user", "content": "Weather in Paris, and the time?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_w",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_t", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_w", "content": "18 C"},
                {"type": "tool_result", "tool_use_id": "toolu_t", "content": "12:00"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]


def test_an_assistant_message_that_only_calls_has_no_empty_text_block() -> None:
    _, turns = to_anthropic_messages(
        (
            ChatMessage(role="user", content="Time?"),
            ChatMessage(
                role="assistant",
                content="",
                tool_calls=(ToolCall(id="toolu_t", name="get_time", arguments="{}"),),
            ),
            ChatMessage(role="tool", tool_call_id="toolu_t", content=""),
        )
    )
    assert turns[1]["content"] == [
        {"type": "tool_use", "id": "toolu_t", "name": "get_time", "input": {}}
    ]
    assert turns[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_t"}],
    }


@pytest.mark.parametrize("arguments", ["[1, 2]", '"Paris"', "{not json"])
def test_arguments_that_are_not_a_json_object_are_refused_as_an_invalid_request(
    arguments: str,
) -> None:
    call = ToolCall(id="toolu_x", name="get_weather", arguments=arguments)
    with pytest.raises(ProviderError) as caught:
        to_anthropic_messages(
            (
                ChatMessage(role="user", content="hi"),
                ChatMessage(role="assistant", content="", tool_calls=(call,)),
            )
        )
    assert (caught.value.code, caught.value.retryable) == ("invalid_request", False)


def read(events: list[dict[str, Any]]) -> list[ToolCallDelta]:
    blocks = ToolUseBlocks()
    pieces = [blocks.piece(MessagesEvent.read(e)) for e in events]
    return [p for p in pieces if p is not None]


def start(block: int, call_id: str, name: str) -> dict[str, Any]:
    tool_use = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
    return {"type": "content_block_start", "index": block, "content_block": tool_use}


def partial(block: int, json_text: str) -> dict[str, Any]:
    delta = {"type": "input_json_delta", "partial_json": json_text}
    return {"type": "content_block_delta", "index": block, "delta": delta}


def stop(block: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": block}


def test_tool_use_blocks_after_a_text_block_are_numbered_as_calls_from_zero() -> None:
    text_block = {"type": "text", "text": ""}
    pieces = read(
        [
            {"type": "content_block_start", "index": 0, "content_block": text_block},
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "…"},
            },
            stop(0),
            start(1, "toolu_w", "get_weather"),
            partial(1, ""),
            {"type": "ping"},
            partial(1, '{"city": '),
            partial(1, '"Paris"}'),
            stop(1),
            start(2, "toolu_t", "get_time"),
            partial(2, '{"zone": "UTC"}'),
            stop(2),
        ]
    )
    assert pieces == [
        ToolCallDelta(index=0, id="toolu_w", name="get_weather"),
        ToolCallDelta(index=0, arguments='{"city": '),
        ToolCallDelta(index=0, arguments='"Paris"}'),
        ToolCallDelta(index=1, id="toolu_t", name="get_time"),
        ToolCallDelta(index=1, arguments='{"zone": "UTC"}'),
    ]


def test_a_call_whose_input_streams_no_json_gets_empty_object_arguments() -> None:
    pieces = read([start(0, "toolu_t", "get_time"), partial(0, ""), stop(0)])
    assert pieces == [
        ToolCallDelta(index=0, id="toolu_t", name="get_time"),
        ToolCallDelta(index=0, arguments="{}"),
    ]


def test_stop_reason_tool_use_is_read_from_message_delta() -> None:
    event = MessagesEvent.read(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 12},
        }
    )
    assert (event.stop_reason, event.output_tokens) == ("tool_use", 12)


@pytest.mark.parametrize(
    "events",
    [
        [partial(1, "{}")],  # input for a block that never started
        [start(0, "toolu_a", "f"), start(0, "toolu_b", "g")],  # one block started twice
        [start(0, "toolu_a", "not a name!")],
        [{"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use"}}],
        [start(0, "toolu_a", "f"), {"type": "content_block_delta", "index": 0,
                                    "delta": {"type": "input_json_delta"}}],
    ],
)  # fmt: skip
def test_tool_use_events_of_another_shape_are_a_clean_retryable_upstream_error(
    events: list[dict[str, Any]],
) -> None:
    with pytest.raises(ProviderError) as caught:
        read(events)
    assert (caught.value.code, caught.value.retryable) == ("upstream_error", True)
