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
from services.generator.errors import ProviderError
from services.generator.ports import StreamEnd, TextChunk

__all__ = ["OpenAIProvider", "translate_openai_error"]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "stop",
    "function_call": "stop",
}


class OpenAIProvider:
    def __init__(self, client: AsyncOpenAI, model_ids: dict[str, str] | None = None) -> None:
        self._client = client
        # Public model name -> upstream model id; names not listed pass through.
        self._model_ids = model_ids or {}

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        return self._stream(request)

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        upstream_model = self._model_ids.get(request.model, request.model)
        kwargs: dict[str, Any] = {}
        p = request.params
        if p.max_tokens is not None:
            kwargs["max_tokens"] = p.max_tokens
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
            raise translate_openai_error(exc) from None

        finish: FinishReason | None = None
        reported_model = upstream_model
        input_tokens: int | None = None
        output_tokens: int | None = None
        try:
            async for chunk in response:
                reported_model = chunk.model or reported_model
                if chunk.usage is not None:
                    input_tokens = chunk.usage.prompt_tokens
                    output_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices[:1]:
                    if choice.delta.content:
                        yield TextChunk(choice.delta.content)
                    if choice.finish_reason is not None:
                        finish = _FINISH.get(choice.finish_reason, "stop")
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise translate_openai_error(exc, mid_stream=True) from None
        finally:
            # Closing the HTTP response is what makes the upstream stop generating.
            await response.close()
        if finish is None:
            raise ProviderError(
                "upstream_error", "The model's stream ended before it finished.", retryable=True
            )
        yield StreamEnd(finish, reported_model, input_tokens, output_tokens)


def translate_openai_error(exc: Exception, *, mid_stream: bool = False) -> ProviderError:
    """Map an SDK or transport error to a stable code; the provider's text is dropped."""
    if mid_stream and isinstance(exc, httpx2.HTTPError | openai.APIConnectionError):
        return ProviderError("upstream_error", "The model's stream broke off.", retryable=True)
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException):
        return ProviderError("timeout", "The model did not answer in time.", retryable=True)
    if isinstance(exc, openai.APIConnectionError | httpx2.TransportError):
        return ProviderError("upstream_unavailable", "The model is unreachable.", retryable=True)
    if isinstance(exc, openai.RateLimitError):
        return ProviderError(
            "rate_limited", "The model is rate limited; try again soon.", retryable=True
        )
    if isinstance(exc, openai.BadRequestError):
        text = str(exc).lower()
        if "context" in text and ("length" in text or "window" in text or "exceed" in text):
            return ProviderError(
                "context_length_exceeded", "The conversation is too long for this model."
            )
        return ProviderError("invalid_request", "The model rejected the request.")
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return ProviderError("upstream_error", "The gateway could not authenticate upstream.")
    if isinstance(exc, openai.NotFoundError):
        return ProviderError("upstream_error", "The upstream model does not exist.")
    if isinstance(exc, openai.InternalServerError):
        return ProviderError("upstream_unavailable", "The model failed; try again.", retryable=True)
    return ProviderError("upstream_error", "The model failed.", retryable=True)
