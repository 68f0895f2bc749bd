"""Anthropic's Messages API through the official `anthropic` SDK, streaming with usage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
from anthropic import AsyncAnthropic, AsyncStream
from pydantic import ValidationError

from contracts import ChatRequest, FinishReason, ToolCallDelta
from services.generator.adapters.anthropic_request import to_anthropic_messages, tool_fields
from services.generator.adapters.anthropic_structured import (
    JsonAnswer,
    answer_tool_fields,
    native_format_fields,
    refuse_inexpressible,
)
from services.generator.adapters.idle_bound import IdleBound
from services.generator.adapters.json_fields import (
    Unreadable,
    count,
    mapping,
    text,
    unreadable_error,
)
from services.generator.adapters.sdk_errors import translate_sdk_error
from services.generator.errors import ProviderError
from services.generator.ports import StreamEnd, TextChunk

__all__ = ["AnthropicProvider", "MessagesEvent", "ToolUseBlocks", "to_anthropic_messages"]

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
}


class AnthropicProvider:
    def __init__(
        self,
        client: AsyncAnthropic,
        upstream_model: str,
        max_output_tokens: int,
        *,
        idle_timeout_s: float | None = None,
    ) -> None:
        self._client = client
        self._upstream_model = upstream_model
        self._max_output_tokens = max_output_tokens
        self._idle_timeout_s = idle_timeout_s

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        return self._stream(request)

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        p = request.params
        # Refused before any call: a fallback's request was checked for another model.
        refuse_inexpressible(p, self._upstream_model)
        # With the client's tools, the answer's shape goes as the native format instead
        # of a forced tool (see anthropic_structured), and the answer is text as usual.
        json_answer = JsonAnswer() if p.response_format is not None and not request.tools else None
        system, messages = to_anthropic_messages(request.messages)
        body: dict[str, Any] = {
            "model": self._upstream_model,
            "max_tokens": p.max_tokens or self._max_output_tokens,
            "messages": messages,
            "stream": True,
            **(
                answer_tool_fields(request, self._upstream_model)
                if json_answer is not None
                else tool_fields(request)
            ),
        }
        if p.response_format is not None and json_answer is None:
            body.update(native_format_fields(request, self._upstream_model))
        if system:
            body["system"] = system
        if p.temperature is not None:
            body["temperature"] = min(p.temperature, 1.0)  # Anthropic's range is 0..1
        if p.top_p is not None:
            body["top_p"] = p.top_p
        if p.stop:
            body["stop_sequences"] = list(p.stop)
        try:
            # The SDK's documented custom-request call: it sends, decodes the SSE, raises
            # its errors (also an `error` event mid-stream) and closes; cast_to=object hands
            # us each event as parsed JSON instead of a model per token.
            response = await self._client.post(
                "/v1/messages",
                cast_to=object,
                body=body,
                stream=True,
                stream_cls=AsyncStream[object],
            )
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            raise translate_sdk_error(exc) from None
        prompt: tuple[int, int] | None = None  # (input tokens, of which cached)
        told = False  # the prompt's size rides on the first chunk
        output_tokens: int | None = None
        finish: FinishReason | None = None
        model = self._upstream_model
        calls = ToolUseBlocks()
        events = aiter(response)
        idle = IdleBound(self._idle_timeout_s)
        try:
            while True:
                try:
                    data = await idle.read(events)
                except StopAsyncIteration:
                    break
                event = MessagesEvent.read(data)
                if event.kind == "message_start":
                    model = event.model or model
                    prompt = event.prompt
                elif event.kind == "message_delta":
                    output_tokens = event.output_tokens
                    if event.stop_reason is not None:
                        finish = _FINISH.get(event.stop_reason, "stop")
                        if json_answer is not None and event.stop_reason == "tool_use":
                            finish = "stop"  # the answer tool's call is the answer itself
                else:
                    if json_answer is not None:
                        answer, piece = json_answer.text(event), None
                    else:
                        answer, piece = event.text or "", calls.piece(event)
                    if not answer and piece is None:
                        continue
                    idle.armed = True
                    pieces = (piece,) if piece is not None else ()
                    if told:
                        yield TextChunk(answer, tool_calls=pieces)
                    else:
                        told = True
                        yield TextChunk(
                            answer,
                            prompt[0] if prompt else None,
                            prompt[1] if prompt else 0,
                            tool_calls=pieces,
                        )
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            raise translate_sdk_error(exc, mid_stream=prompt is not None) from None
        finally:
            # Closing the HTTP response is what makes the upstream stop generating.
            await response.close()
        if finish is None:
            raise ProviderError(
                "upstream_error", "The model's stream ended before it finished.", retryable=True
            )
        if json_answer is not None and finish == "stop" and not json_answer.seen:
            raise ProviderError("upstream_error", "The model answered without the JSON asked for.")
        input_tokens, cached = prompt if prompt else (None, 0)
        yield StreamEnd(finish, model, input_tokens, output_tokens, cached)


class MessagesEvent:
    """The parts of one Messages API stream event the relay needs, read from its JSON."""

    __slots__ = (
        "block",
        "kind",
        "model",
        "output_tokens",
        "partial_json",
        "prompt",
        "stop_reason",
        "text",
        "tool_use",
    )

    def __init__(self, kind: str | None) -> None:
        self.kind = kind
        self.model: str | None = None
        self.prompt: tuple[int, int] | None = None
        self.text: str | None = None
        self.output_tokens: int | None = None
        self.stop_reason: str | None = None
        self.block: int | None = None
        """The content block a block event is about (Anthropic's index: text blocks count)."""
        self.tool_use: tuple[str, str] | None = None
        """(id, name) of a tool_use block that starts."""
        self.partial_json: str | None = None
        """A piece of a tool_use block's input, JSON text."""

    @classmethod
    def read(cls, data: object) -> MessagesEvent:
        try:
            fields = mapping(data)
            event = cls(text(fields.get("type")))
            if event.kind == "message_start":
                message = mapping(fields.get("message"))
                event.model = text(message.get("model"))
                event.prompt = _prompt(mapping(message.get("usage")))
            elif event.kind == "content_block_start":
                block = fields.get("content_block")
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    event.block = count(fields.get("index"))
                    event.tool_use = (_required(block.get("id")), _required(block.get("name")))
            elif event.kind == "content_block_delta":
                delta = mapping(fields.get("delta"))
                if delta.get("type") == "text_delta":
                    event.text = text(delta.get("text"))
                elif delta.get("type") == "input_json_delta":
                    event.block = count(fields.get("index"))
                    event.partial_json = _required(delta.get("partial_json"))
            elif event.kind == "content_block_stop":
                if "index" in fields:
                    event.block = count(fields.get("index"))
            elif event.kind == "message_delta":
                event.output_tokens = count(mapping(fields.get("usage")).get("output_tokens"))
                event.stop_reason = text(mapping(fields.get("delta")).get("stop_reason"))
            return event
        except Unreadable:
            raise unreadable_error() from None


class ToolUseBlocks:
    """The tool_use blocks of one answer, as OpenAI's streamed tool-call pieces.

    Anthropic numbers every content block, text ones too; OpenAI numbers the calls
    alone (0, 1, ...), and its clients assemble a call by that number.
    """

    __slots__ = ("_argued", "_calls")

    def __init__(self) -> None:
        self._calls: dict[int, int] = {}  # content block -> call index
        self._argued: set[int] = set()  # calls whose input has begun

    def piece(self, event: MessagesEvent) -> ToolCallDelta | None:
        """The piece a block event adds to a call, if any."""
        if event.block is None:
            return None
        if event.tool_use is not None:
            if event.block in self._calls:
                raise unreadable_error()
            index = self._calls[event.block] = len(self._calls)
            call_id, name = event.tool_use
            return _delta(index, call_id, name)
        index_of = self._calls.get(event.block)
        if event.partial_json is not None:
            if index_of is None:
                raise unreadable_error()
            if not event.partial_json:
                return None
            self._argued.add(index_of)
            return _delta(index_of, arguments=event.partial_json)
        if event.kind == "content_block_stop" and index_of is not None:
            # A call without input streams no JSON; OpenAI's arguments are then `{}`.
            done_without_input = index_of not in self._argued
            self._argued.add(index_of)
            if done_without_input:
                return _delta(index_of, arguments="{}")
        return None


def _delta(
    index: int, call_id: str | None = None, name: str | None = None, arguments: str = ""
) -> ToolCallDelta:
    try:
        return ToolCallDelta(index=index, id=call_id, name=name, arguments=arguments)
    except ValidationError:
        raise unreadable_error() from None


def _required(value: object) -> str:
    found = text(value)
    if found is None:
        raise Unreadable
    return found


def _prompt(usage: dict[str, object]) -> tuple[int, int]:
    """(the prompt's size, the part read from cache).

    Anthropic counts cache reads and writes apart from input_tokens; the prompt's size
    is their sum, as OpenAI's prompt_tokens is.
    """
    cached = count(usage.get("cache_read_input_tokens") or 0)
    written = count(usage.get("cache_creation_input_tokens") or 0)
    return count(usage.get("input_tokens")) + cached + written, cached
