"""Any OpenAI-compatible upstream through the official `openai` SDK.

The same code path serves OpenAI itself, vLLM, llama.cpp's server and Ollama:
only `base_url` and the key differ.

The stream is read through the SDK's documented custom-request call
(`client.post(..., stream=True)`) with `cast_to=object`: the SDK still sends the
request, decodes the SSE, raises its errors (status, `error` events, timeouts) and
closes the response, but hands us each chunk as parsed JSON instead of building
a ChatCompletionChunk model per token, which was the generator's largest cost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI, AsyncStream
from pydantic import ValidationError

from contracts import (
    ChatMessage,
    ChatRequest,
    ContentPart,
    FinishReason,
    GenerationParams,
    TextPart,
    TokenLogprob,
    ToolCallDelta,
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

__all__ = ["ChunkParts", "OpenAIProvider"]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}


class OpenAIProvider:
    def __init__(
        self,
        client: AsyncOpenAI,
        upstream_model: str,
        *,
        reasoning: bool = False,
        idle_timeout_s: float | None = None,
    ) -> None:
        self._client = client
        self._upstream_model = upstream_model
        self._idle_timeout_s = idle_timeout_s
        # Reasoning models refuse max_tokens; the newer name bounds thinking and answer alike.
        self._output_limit = "max_completion_tokens" if reasoning else "max_tokens"

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        return self._stream(request)

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        upstream_model = self._upstream_model
        body: dict[str, Any] = {
            "model": upstream_model,
            "messages": [_message(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            **_tool_fields(request),
        }
        p = request.params
        if p.max_tokens is not None:
            body[self._output_limit] = p.max_tokens
        if p.temperature is not None:
            body["temperature"] = p.temperature
        if p.top_p is not None:
            body["top_p"] = p.top_p
        if p.stop:
            body["stop"] = list(p.stop)
        if p.seed is not None:
            body["seed"] = p.seed
        body.update(_answer_shaping(request))
        body.update(_logprob_fields(p))
        try:
            response = await self._client.post(
                "/chat/completions",
                cast_to=object,
                body=body,
                stream=True,
                stream_cls=AsyncStream[object],
            )
        except (openai.APIError, httpx2.HTTPError) as exc:
            raise translate_sdk_error(exc) from None

        finish: FinishReason | None = None
        reported_model = upstream_model
        input_tokens: int | None = None
        output_tokens: int | None = None
        cached = 0
        events = aiter(response)
        idle = IdleBound(self._idle_timeout_s)
        top = p.top_logprobs or 0
        try:
            while True:
                try:
                    data = await idle.read(events)
                except StopAsyncIteration:
                    break
                chunk = ChunkParts.read(data)
                reported_model = chunk.model or reported_model
                if chunk.usage is not None:
                    input_tokens, output_tokens, cached = chunk.usage
                if chunk.text or chunk.tool_calls or chunk.logprobs:
                    idle.armed = True
                    yield TextChunk(
                        chunk.text or "",
                        tool_calls=chunk.tool_calls,
                        logprobs=chunk.logprobs and _at_most(chunk.logprobs, top),
                    )
                if chunk.finish_reason is not None:
                    finish = _FINISH.get(chunk.finish_reason, "stop")
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


class ChunkParts:
    """The parts of one chat.completion.chunk the relay needs, read from its JSON."""

    __slots__ = ("finish_reason", "logprobs", "model", "text", "tool_calls", "usage")

    def __init__(
        self,
        model: str | None,
        text: str | None,
        finish_reason: str | None,
        usage: tuple[int, int, int] | None,
        tool_calls: tuple[ToolCallDelta, ...] = (),
        logprobs: tuple[TokenLogprob, ...] = (),
    ) -> None:
        self.model = model
        self.text = text
        self.finish_reason = finish_reason
        self.usage = usage
        self.tool_calls = tool_calls
        self.logprobs = logprobs

    @classmethod
    def read(cls, data: object) -> ChunkParts:
        try:
            chunk = mapping(data)
            choices = chunk.get("choices") or []
            if not isinstance(choices, list):
                raise Unreadable
            choice = mapping(choices[0]) if choices else {}
            delta = mapping(choice.get("delta") or {})
            # Tested here rather than in a call: almost every chunk carries none.
            logprobs = choice.get("logprobs")
            return cls(
                text(chunk.get("model")),
                text(delta.get("content")),
                text(choice.get("finish_reason")),
                _usage(chunk.get("usage")),
                _tool_call_pieces(delta.get("tool_calls")),
                _token_logprobs(logprobs) if logprobs else (),
            )
        except Unreadable:
            raise unreadable_error() from None


def _token_logprobs(value: object) -> tuple[TokenLogprob, ...]:
    """`choice.logprobs.content`: the chunk's tokens, each with its likeliest alternatives."""
    content = mapping(value).get("content")
    if not content:
        return ()
    if not isinstance(content, list):
        raise Unreadable
    try:
        return tuple(TokenLogprob.model_validate(item) for item in content)
    except ValidationError:
        raise Unreadable from None


def _logprob_fields(p: GenerationParams) -> dict[str, Any]:
    """`logprobs` as sent upstream: at least one alternative per token asked for.

    llama.cpp's server sends no log probabilities at all for `top_logprobs: 0`,
    and a default list of alternatives when it is absent; OpenAI sends them either
    way. Asking every upstream for one or more and cutting the lists to what the
    client asked (`_at_most`) gives the client OpenAI's answer from all of them.
    """
    if not p.logprobs:
        return {}
    return {"logprobs": True, "top_logprobs": max(p.top_logprobs or 0, 1)}


def _at_most(tokens: tuple[TokenLogprob, ...], top: int) -> tuple[TokenLogprob, ...]:
    """The tokens with no more alternatives each than the request's `top_logprobs`."""
    return tuple(
        t
        if len(t.top_logprobs) <= top
        else t.model_copy(update={"top_logprobs": t.top_logprobs[:top]})
        for t in tokens
    )


def _tool_call_pieces(value: object) -> tuple[ToolCallDelta, ...]:
    """`delta.tool_calls`: pieces of calls, told apart by `index` (id and name come first)."""
    if not value:
        return ()
    if not isinstance(value, list):
        raise Unreadable
    pieces = []
    for item in value:
        call = mapping(item)
        function = mapping(call.get("function") or {})
        try:
            pieces.append(
                ToolCallDelta(
                    index=count(call.get("index", 0)),
                    id=text(call.get("id")),
                    name=text(function.get("name")),
                    arguments=text(function.get("arguments")) or "",
                )
            )
        except ValidationError:
            raise Unreadable from None
    return tuple(pieces)


def _message(message: ChatMessage) -> dict[str, Any]:
    """A history message in Chat Completions' shape, tool calls and results included."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.tool_calls:
        return {
            "role": message.role,
            # OpenAI's own shape for a message that only calls tools.
            "content": message.content or None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ],
        }
    if message.parts:
        return {"role": message.role, "content": [_content_part(p) for p in message.parts]}
    return {"role": message.role, "content": message.content}


def _content_part(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    # By now a stored image's url is its data URL (services.generator.images).
    image: dict[str, Any] = {"url": part.url}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def _answer_shaping(request: ChatRequest) -> dict[str, Any]:
    """The optional fields that shape the answer, in OpenAI's own form, only when set."""
    p = request.params
    fields: dict[str, Any] = {
        "frequency_penalty": p.frequency_penalty,
        "presence_penalty": p.presence_penalty,
        "logit_bias": p.logit_bias,
        "reasoning_effort": p.reasoning_effort,
    }
    shape = p.response_format
    if shape is not None and shape.type == "json_object":
        fields["response_format"] = {"type": "json_object"}
    elif shape is not None:
        named = {"name": shape.name, "description": shape.description, "strict": shape.strict}
        fields["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                **{k: v for k, v in named.items() if v is not None},
                "schema": shape.json_schema or {},
            },
        }
    return {k: v for k, v in fields.items() if v is not None}


def _tool_fields(request: ChatRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if request.tools:
        fields["tools"] = [
            {
                "type": "function",
                "function": tool.model_dump(exclude_none=True),
            }
            for tool in request.tools
        ]
    choice = request.tool_choice
    if choice is not None:
        fields["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}}
            if choice.mode == "function"
            else choice.mode
        )
    if request.parallel_tool_calls is not None and request.tools:
        fields["parallel_tool_calls"] = request.parallel_tool_calls
    return fields


def _usage(value: object) -> tuple[int, int, int] | None:
    """(prompt, completion, cached prompt) tokens, when the chunk carries usage."""
    if value is None:
        return None
    usage = mapping(value)
    details = mapping(usage.get("prompt_tokens_details") or {})
    return (
        count(usage.get("prompt_tokens")),
        count(usage.get("completion_tokens")),
        count(details.get("cached_tokens") or 0),
    )
