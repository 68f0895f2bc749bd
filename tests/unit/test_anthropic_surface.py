"""The Messages API surface: its request onto a chat request, a turn back onto its events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts import ToolCall, ToolCallDelta, TurnUsage
from services.gateway.anthropic.schema import MessagesRequest
from services.gateway.anthropic.translate import to_chat_completion
from services.gateway.anthropic.wire import MessageStream, message_body
from services.gateway.http.errors import ApiError
from services.gateway.openai.images import ImageUrlPart
from services.gateway.openai.schema import TextPart


def body(**fields: Any) -> MessagesRequest:
    return MessagesRequest.model_validate(
        {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **fields}
    )


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"top_k": 5}, "top_k"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
        ({"mcp_servers": [{"type": "url", "url": "https://x"}]}, "mcp_servers"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0"),
        ({"output_config": {"effort": "high"}}, "output_config.effort"),
    ],
)
def test_what_tokenbus_cannot_carry_is_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as refused:
        to_chat_completion(body(**fields))
    assert (refused.value.status, refused.value.code, refused.value.param) == (
        400,
        "unsupported_parameter",
        param,
    )


def test_thinking_turned_off_asks_for_nothing() -> None:
    to_chat_completion(body(thinking={"type": "disabled"}))


def test_system_stops_choice_and_output_format_map_onto_openais_fields() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    chat = to_chat_completion(
        body(
            system=[{"type": "text", "text": "Be brief."}],
            stop_sequences=["END"],
            tools=[{"name": "f", "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": "f"},
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
    )
    assert (chat.messages[0].role, chat.messages[0].content) == ("system", "Be brief.")
    assert chat.stop == ["END"]
    assert chat.tool_choice is not None
    assert chat.response_format is not None
    assert chat.response_format.json_schema is not None
    assert chat.response_format.json_schema.schema_ == schema


def test_image_blocks_become_image_url_parts_and_error_results_say_so() -> None:
    chat = to_chat_completion(
        body(
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": "down",
                            "is_error": True,
                        },
                        {"type": "text", "text": "Look:"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://x/c.png"}},
                    ],
                },
            ]
        )
    )
    tool, user = chat.messages[2], chat.messages[3]
    assert (tool.role, tool.content, tool.tool_call_id) == ("tool", "Error: down", "t1")
    assert isinstance(user.content, list)
    text, inline, linked = user.content
    assert isinstance(text, TextPart)
    assert isinstance(inline, ImageUrlPart)
    assert isinstance(linked, ImageUrlPart)
    assert inline.image_url.url == "data:image/png;base64,AAAA"
    assert linked.image_url.url == "https://x/c.png"


def test_a_block_kind_it_does_not_take_is_refused_where_it_is() -> None:
    document = {"type": "document", "source": {"type": "text", "data": "x"}}
    with pytest.raises(ApiError) as refused:
        to_chat_completion(body(messages=[{"role": "user", "content": [document]}]))
    assert (refused.value.code, refused.value.param) == (
        "unsupported_content",
        "messages.0.content.0",
    )


def events(stream: bytes) -> list[dict[str, Any]]:
    found = []
    for frame in stream.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "data" in lines:
            data = json.loads(lines["data"])
            assert data["type"] == lines["event"]  # the SSE event name is the data's type
            found.append(data)
    return found


USAGE = TurnUsage(
    correlation_id="c",
    conversation_id="v",
    turn_id="t",
    seq=3,
    model="m",
    provider_model="m",
    input_tokens=12,
    output_tokens=5,
    cached_input_tokens=2,
)
CALL = ToolCall(id="call_1", name="w", arguments='{"city": "Paris"}')


def test_text_then_a_call_stream_as_two_blocks_in_order() -> None:
    writer = MessageStream("msg_t", "m")
    stream = (
        writer.start()
        + writer.text("Hel")
        + writer.text("lo")
        + writer.finish("tool_calls", USAGE, (CALL,))
    )
    found = events(stream)
    assert [e["type"] for e in found] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [e.get("index") for e in found[1:8]] == [0, 0, 0, 0, 1, 1, 1]
    assert found[5]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "w",
                                         "input": {}}  # fmt: skip
    assert json.loads(found[6]["delta"]["partial_json"]) == {"city": "Paris"}
    assert found[8]["delta"]["stop_reason"] == "tool_use"
    # Anthropic counts cache reads apart from input_tokens.
    assert found[8]["usage"] == {"input_tokens": 10, "output_tokens": 5,
                                 "cache_read_input_tokens": 2}  # fmt: skip


def test_the_first_calls_input_streams_as_it_comes_and_an_interleaved_one_comes_whole() -> None:
    writer = MessageStream("msg_t", "m")
    pieces = [
        ToolCallDelta(index=0, id="call_w", name="weather", arguments='{"ci'),
        ToolCallDelta(index=1, id="call_t", name="time", arguments='{"zone"'),
        ToolCallDelta(index=0, arguments='ty": "Paris"}'),
        ToolCallDelta(index=1, arguments=': "UTC"}'),
    ]
    live = [writer.call(piece) for piece in pieces]
    assert live[1] == live[3] == b""  # the second call waits: its block cannot open yet
    late_text = writer.text("Checking.")
    assert late_text == b""  # nor can text while the call's block is open
    calls = (
        ToolCall(id="call_w", name="weather", arguments='{"city": "Paris"}'),
        ToolCall(id="call_t", name="time", arguments='{"zone": "UTC"}'),
    )
    found = events(writer.start() + b"".join(live) + writer.finish("tool_calls", USAGE, calls))
    blocks = [e for e in found if e["type"].startswith("content_block")]
    assert [(e["type"], e["index"]) for e in blocks] == [
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
    ]
    assert blocks[0]["content_block"]["id"] == "call_w"
    assert "".join(e["delta"]["partial_json"] for e in blocks[1:3]) == '{"city": "Paris"}'
    assert blocks[5]["delta"] == {"type": "text_delta", "text": "Checking."}
    assert blocks[7]["content_block"]["name"] == "time"
    assert json.loads(blocks[8]["delta"]["partial_json"]) == {"zone": "UTC"}


def test_a_body_with_broken_call_arguments_keeps_them() -> None:
    broken = ToolCall(id="c", name="w", arguments='{"city": ')
    answer = message_body("t", "m", "", (broken,), "length", None)
    assert answer["content"] == [
        {"type": "tool_use", "id": "c", "name": "w", "input": {"_raw_arguments": '{"city": '}}
    ]
    assert answer["stop_reason"] == "max_tokens"
