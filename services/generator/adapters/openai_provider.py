"""Any OpenAI-compatible upstream through the official `openai` SDK.

The same code path serves OpenAI itself, vLLM, llama.cpp's server and Ollama:
only `base_url` and the key differ.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI

from contracts import ChatRequest, FinishReason
from services.generator.adapters.sdk_errors import translate_sdk_error
from services.generator.errors import ProviderError
from services.generator.ports import StreamEnd, TextChunk

__all__ = ["OpenAIProvider"]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "stop",
    "function_call": "stop",
}


class OpenAIProvider:
    def __init__(
        self, client: AsyncOpenAI, upstream_model: str, *, reasoning: bool = False
    ) -> None:
        self._client = client
        self._upstream_model = upstream_model
        # Reasoning models refuse max_tokens; the newer name bounds thinking and answer alike.
        self._output_limit = "max_completion_tokens" if reasoning else "max_tokens"

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        return self._stream(request)

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        upstream_model = self._upstream_model
        kwargs: dict[str, Any] = {}
        p = request.params
        if p.max_tokens is not None:
            kwargs[self._output_limit] = p.max_tokens
        if p.temperature is not None:
            kwargs["temperature"] = p.temperature
        if p.top_p is not None:
            kwargs["top_p"] = p.top_p
        if p.stop:
            kwargs["stop"] = list(p.stop)
        if p.seed is not None:
            kwargs["seed"] = p.seed
        messages: list[Any] = [{"role": m.role, "content": m.content} for m in request.messages]
        try:
            response = await self._client.chat.completions.create(
                model=upstream_model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **kwargs,
            )
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise translate_sdk_error(exc) from None

        finish: FinishReason | None = None
        reported_model = upstream_model
        input_tokens: int | None = None
        output_tokens: int | None = None
        cached = 0
        try:
            async for chunk in response:
                reported_model = chunk.model or reported_model
                if chunk.usage is not None:
                    input_tokens = chunk.usage.prompt_tokens
                    output_tokens = chunk.usage.completion_tokens
                    details = chunk.usage.prompt_tokens_details
                    cached = (details.cached_tokens or 0) if details else 0
                for choice in chunk.choices[:1]:
                    if choice.delta.content:
                        yield TextChunk(choice.delta.content)
                    if choice.finish_reason is not None:
                        finish = _FINISH.get(choice.finish_reason, "stop")
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise translate_sdk_error(exc, mid_stream=True) from None
        finally:
            # Closing the HTTP response is what makes the upstream stop generating.
            await response.close()
        if finish is None:
            raise ProviderError(
                "upstream_error", "The model's stream ended before it finished.", retryable=True
            )
        yield StreamEnd(finish, reported_model, input_tokens, output_tokens, cached)
