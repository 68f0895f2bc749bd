"""Anthropic's Messages API through the official `anthropic` SDK, streaming with usage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
from anthropic import AsyncAnthropic, AsyncStream

from contracts import ChatMessage, ChatRequest, FinishReason
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

__all__ = ["AnthropicProvider", "MessagesEvent", "to_anthropic_messages"]

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
    "tool_use": "stop",
    "pause_turn": "stop",
}


def to_anthropic_messages(
    messages: tuple[ChatMessage, ...],
) -> tuple[str | None, list[dict[str, Any]]]:
    """System prompts go to `system`; the rest must alternate and start with the user."""
    system = "\n\n".join(m.content for m in messages if m.role == "system") or None
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"] += "\n\n" + message.content
        else:
            turns.append({"role": message.role, "content": message.content})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": "(continue)"})
    return system, turns


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
        system, messages = to_anthropic_messages(request.messages)
        p = request.params
        body: dict[str, Any] = {
            "model": self._upstream_model,
            "max_tokens": p.max_tokens or self._max_output_tokens,
            "messages": messages,
            "stream": True,
        }
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
                elif event.text:
                    idle.armed = True
                    if told:
                        yield TextChunk(event.text)
                    else:
                        told = True
                        yield TextChunk(
                            event.text,
                            prompt[0] if prompt else None,
                            prompt[1] if prompt else 0,
                        )
                elif event.kind == "message_delta":
                    output_tokens = event.output_tokens
                    if event.stop_reason is not None:
                        finish = _FINISH.get(event.stop_reason, "stop")
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            raise translate_sdk_error(exc, mid_stream=prompt is not None) from None
        finally:
            # Closing the HTTP response is what makes the upstream stop generating.
            await response.close()
        if finish is None:
            raise ProviderError(
                "upstream_error", "The model's stream ended before it finished.", retryable=True
            )
        input_tokens, cached = prompt if prompt else (None, 0)
        yield StreamEnd(finish, model, input_tokens, output_tokens, cached)


class MessagesEvent:
    """The parts of one Messages API stream event the relay needs, read from its JSON."""

    __slots__ = ("kind", "model", "output_tokens", "prompt", "stop_reason", "text")

    def __init__(self, kind: str | None) -> None:
        self.kind = kind
        self.model: str | None = None
        self.prompt: tuple[int, int] | None = None
        self.text: str | None = None
        self.output_tokens: int | None = None
        self.stop_reason: str | None = None

    @classmethod
    def read(cls, data: object) -> MessagesEvent:
        try:
            fields = mapping(data)
            event = cls(text(fields.get("type")))
            if event.kind == "message_start":
                message = mapping(fields.get("message"))
                event.model = text(message.get("model"))
                event.prompt = _prompt(mapping(message.get("usage")))
            elif event.kind == "content_block_delta":
                delta = mapping(fields.get("delta"))
                if delta.get("type") == "text_delta":
                    event.text = text(delta.get("text"))
            elif event.kind == "message_delta":
                event.output_tokens = count(mapping(fields.get("usage")).get("output_tokens"))
                event.stop_reason = text(mapping(fields.get("delta")).get("stop_reason"))
            return event
        except Unreadable:
            raise unreadable_error() from None


def _prompt(usage: dict[str, object]) -> tuple[int, int]:
    """(the prompt's size, the part read from cache).

    Anthropic counts cache reads and writes apart from input_tokens; the prompt's size
    is their sum, as OpenAI's prompt_tokens is.
    """
    cached = count(usage.get("cache_read_input_tokens") or 0)
    written = count(usage.get("cache_creation_input_tokens") or 0)
    return count(usage.get("input_tokens")) + cached + written, cached
