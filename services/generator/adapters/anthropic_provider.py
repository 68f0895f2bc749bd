"""Anthropic's Messages API through the official `anthropic` SDK, streaming with usage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
from anthropic import AsyncAnthropic

from contracts import ChatMessage, ChatRequest, FinishReason
from services.generator.adapters.sdk_errors import translate_sdk_error
from services.generator.errors import ProviderError
from services.generator.ports import StreamEnd, TextChunk

__all__ = ["AnthropicProvider", "to_anthropic_messages"]

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
    def __init__(self, client: AsyncAnthropic, upstream_model: str, max_output_tokens: int) -> None:
        self._client = client
        self._upstream_model = upstream_model
        self._max_output_tokens = max_output_tokens

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        return self._stream(request)

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        system, messages = to_anthropic_messages(request.messages)
        p = request.params
        kwargs: dict[str, Any] = {}
        if system:
            kwargs["system"] = system
        # This SDK release dropped temperature/top_p from its signature (a TypeError if
        # passed); the Messages API still takes them, so they travel in the body.
        sampling: dict[str, float] = {}
        if p.temperature is not None:
            sampling["temperature"] = min(p.temperature, 1.0)  # Anthropic's range is 0..1
        if p.top_p is not None:
            sampling["top_p"] = p.top_p
        if sampling:
            kwargs["extra_body"] = sampling
        if p.stop:
            kwargs["stop_sequences"] = list(p.stop)
        input_tokens: int | None = None
        cached = 0
        output_tokens: int | None = None
        told = False  # the prompt's size rides on the first chunk
        finish: FinishReason | None = None
        model = self._upstream_model
        try:
            async with self._client.messages.stream(
                model=self._upstream_model,
                max_tokens=p.max_tokens or self._max_output_tokens,
                messages=messages,  # type: ignore[arg-type]
                **kwargs,
            ) as stream:
                # Leaving this block (also by cancellation) closes the HTTP response.
                async for event in stream:
                    if event.type == "message_start":
                        model = event.message.model or model
                        usage = event.message.usage
                        # Anthropic counts cache reads and writes apart from input_tokens;
                        # the prompt's size is their sum, as OpenAI's prompt_tokens is.
                        cached = usage.cache_read_input_tokens or 0
                        input_tokens = (
                            usage.input_tokens + cached + (usage.cache_creation_input_tokens or 0)
                        )
                    elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                        if told:
                            yield TextChunk(event.delta.text)
                        else:
                            told = True
                            yield TextChunk(event.delta.text, input_tokens, cached)
                    elif event.type == "message_delta":
                        output_tokens = event.usage.output_tokens
                        if event.delta.stop_reason is not None:
                            finish = _FINISH.get(event.delta.stop_reason, "stop")
        except (anthropic.APIError, httpx2.HTTPError) as exc:
            raise translate_sdk_error(exc, mid_stream=input_tokens is not None) from None
        if finish is None:
            raise ProviderError(
                "upstream_error", "The model's stream ended before it finished.", retryable=True
            )
        yield StreamEnd(finish, model, input_tokens, output_tokens, cached)
