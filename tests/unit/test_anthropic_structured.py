"""response_format on Anthropic's Messages API: a forced tool out, its input back as text."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from anthropic import AsyncAnthropic

from contracts import ChatMessage, ChatRequest, FunctionTool, GenerationParams, ResponseFormat
from services.generator.adapters.anthropic_provider import AnthropicProvider, MessagesEvent
from services.generator.adapters.anthropic_structured import (
    JsonAnswer,
    answer_tool_fields,
    refuse_inexpressible,
)
from services.generator.errors import ProviderError
from services.generator.ports import StreamEnd, TextChunk

CITY: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
AS_CITY = ResponseFormat(
    type="json_schema", name="city", description="A city", json_schema=CITY, strict=True
)


def request(params: GenerationParams, **fields: Any) -> ChatRequest:
    return ChatRequest(
        correlation_id="c",
        gateway_id="gw",
        conversation_id="conv",
        turn_id="turn",
        model="m",
        messages=(ChatMessage(role="user", content="A city?"),),
        params=params,
        **fields,
    )


def shaped(shape: ResponseFormat, **fields: Any) -> ChatRequest:
    return request(GenerationParams(response_format=shape), **fields)


def test_a_json_schema_becomes_one_forced_tool_named_after_it() -> None:
    assert answer_tool_fields(shaped(AS_CITY), "claude") == {
        "tools": [{"name": "city", "description": "A city", "input_schema": CITY, "strict": True}],
        "tool_choice": {"type": "tool", "name": "city", "disable_parallel_tool_use": True},
    }


def test_json_object_forces_a_tool_that_takes_any_object() -> None:
    fields = answer_tool_fields(shaped(ResponseFormat(type="json_object")), "claude")
    (tool,) = fields["tools"]
    assert (tool["name"], tool["input_schema"]) == ("json_answer", {"type": "object"})
    assert "strict" not in tool
    assert fields["tool_choice"]["name"] == "json_answer"


def test_a_schema_that_is_not_an_object_is_refused() -> None:
    listed = ResponseFormat(type="json_schema", name="xs", json_schema={"type": "array"})
    with pytest.raises(ProviderError) as caught:
        answer_tool_fields(shaped(listed), "claude")
    assert caught.value.code == "invalid_request"
    assert "claude" in caught.value.message


async def test_with_the_clients_tools_the_schema_goes_as_the_native_format() -> None:
    text = words('{"city": "Paris"}')
    upstream = Upstream(sse(message_start(), text, stop(0), message_delta("end_turn")))
    tooled = shaped(AS_CITY, tools=(FunctionTool(name="get_time"),))
    *chunks, end = await collect(upstream.provider(), tooled)
    assert "".join(c.text for c in chunks if isinstance(c, TextChunk)) == '{"city": "Paris"}'
    assert isinstance(end, StreamEnd)
    assert end.finish_reason == "stop"
    (sent,) = upstream.sent
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": CITY}}
    assert [t["name"] for t in sent["tools"]] == ["get_time"]
    assert "tool_choice" not in sent  # the model may call the tool or answer


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("frequency_penalty", 0.5),
        ("presence_penalty", -0.5),
        ("logit_bias", {"50256": -100}),
        ("reasoning_effort", "low"),
        ("logprobs", True),
    ],
)
def test_a_field_the_messages_api_cannot_express_is_refused_by_name(
    field: str, value: object
) -> None:
    with pytest.raises(ProviderError) as caught:
        refuse_inexpressible(GenerationParams(**{field: value}), "claude")
    assert (caught.value.code, caught.value.message) == (
        "invalid_request",
        f"{field} is not supported by claude",
    )
    assert not caught.value.retryable


def words(said: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": said},
    }


def events(*data: dict[str, Any]) -> list[MessagesEvent]:
    return [MessagesEvent.read(d) for d in data]


def start(index: int, name: str = "city") -> dict[str, Any]:
    block = {"type": "tool_use", "id": f"toolu_{index}", "name": name, "input": {}}
    return {"type": "content_block_start", "index": index, "content_block": block}


def piece(index: int, partial: str) -> dict[str, Any]:
    delta = {"type": "input_json_delta", "partial_json": partial}
    return {"type": "content_block_delta", "index": index, "delta": delta}


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def test_the_tool_input_pieces_become_the_answer_text() -> None:
    answer = JsonAnswer()
    texts = [
        answer.text(e)
        for e in events(
            start(0), piece(0, ""), piece(0, '{"city": '), piece(0, '"Paris"}'), stop(0)
        )
    ]
    assert texts == ["", "", '{"city": ', '"Paris"}', ""]
    assert answer.seen


def test_text_blocks_and_a_second_tool_use_are_left_out_of_the_answer() -> None:
    text = words("Hi")
    thinking = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "hmm"},
    }
    answer = JsonAnswer()
    stream = events(text, thinking, stop(0), start(1), piece(1, "{}"), stop(1), start(2))
    stream += events(piece(2, '{"x": 1}'), stop(2))
    assert "".join(answer.text(e) for e in stream) == "{}"


def test_a_call_without_input_answers_an_empty_object() -> None:
    answer = JsonAnswer()
    assert [answer.text(e) for e in events(start(0), stop(0))] == ["", "{}"]


def sse(*data: dict[str, Any]) -> bytes:
    return b"".join(f"event: {d['type']}\ndata: {json.dumps(d)}\n\n".encode() for d in data)


def message_start() -> dict[str, Any]:
    message = {"model": "claude", "usage": {"input_tokens": 9, "output_tokens": 0}}
    return {"type": "message_start", "message": message}


def message_delta(reason: str) -> dict[str, Any]:
    delta = {"stop_reason": reason}
    return {"type": "message_delta", "delta": delta, "usage": {"output_tokens": 4}}


class Upstream:
    """A Messages endpoint behind the SDK's own client, recording what it was sent."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent: list[dict[str, Any]] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append(json.loads(request.content))
        headers = {"content-type": "text/event-stream"}
        return httpx2.Response(200, content=self.body, headers=headers)

    def provider(self) -> AnthropicProvider:
        http = httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))
        client = AsyncAnthropic(base_url="http://up", api_key="k", http_client=http, max_retries=0)
        return AnthropicProvider(client, "claude", 256)


async def collect(provider: AnthropicProvider, req: ChatRequest) -> list[TextChunk | StreamEnd]:
    return [item async for item in provider.stream(req)]


async def test_a_streamed_forced_tool_answer_arrives_as_json_text_with_finish_stop() -> None:
    upstream = Upstream(
        sse(
            message_start(),
            start(0),
            piece(0, '{"city"'),
            piece(0, ': "Paris"}'),
            stop(0),
            message_delta("tool_use"),
            {"type": "message_stop"},
        )
    )
    items = await collect(upstream.provider(), shaped(AS_CITY))
    *chunks, end = items
    assert all(isinstance(c, TextChunk) and not c.tool_calls for c in chunks)
    assert json.loads("".join(c.text for c in chunks if isinstance(c, TextChunk))) == {
        "city": "Paris"
    }
    assert isinstance(end, StreamEnd)
    assert (end.finish_reason, end.input_tokens, end.output_tokens) == ("stop", 9, 4)
    (sent,) = upstream.sent
    assert sent["tool_choice"] == {
        "type": "tool",
        "name": "city",
        "disable_parallel_tool_use": True,
    }
    assert [t["name"] for t in sent["tools"]] == ["city"]


async def test_a_truncated_answer_finishes_with_length() -> None:
    upstream = Upstream(
        sse(message_start(), start(0), piece(0, '{"ci'), message_delta("max_tokens"))
    )
    *chunks, end = await collect(upstream.provider(), shaped(AS_CITY))
    assert "".join(c.text for c in chunks if isinstance(c, TextChunk)) == '{"ci'
    assert isinstance(end, StreamEnd)
    assert end.finish_reason == "length"


async def test_an_answer_in_words_instead_of_the_tool_is_an_upstream_error() -> None:
    text = words("Hi")
    upstream = Upstream(sse(message_start(), text, stop(0), message_delta("end_turn")))
    with pytest.raises(ProviderError) as caught:
        await collect(upstream.provider(), shaped(AS_CITY))
    assert caught.value.code == "upstream_error"


async def test_a_field_it_cannot_express_is_refused_before_any_call() -> None:
    upstream = Upstream(b"")
    with pytest.raises(ProviderError) as caught:
        await collect(upstream.provider(), request(GenerationParams(presence_penalty=0.5)))
    assert caught.value.code == "invalid_request"
    assert upstream.sent == []


async def test_without_response_format_the_request_and_answer_are_as_before() -> None:
    text = words("Hi")
    upstream = Upstream(sse(message_start(), text, stop(0), message_delta("end_turn")))
    *chunks, end = await collect(upstream.provider(), request(GenerationParams()))
    assert [c.text for c in chunks if isinstance(c, TextChunk)] == ["Hi"]
    assert isinstance(end, StreamEnd)
    assert end.finish_reason == "stop"
    assert not {"tools", "tool_choice"} & set(upstream.sent[0])
