"""OpenAI's chat.completion and chat.completion.chunk bodies, and their SSE framing.

Per-token chunks are built from pre-encoded bytes around the JSON-escaped text:
this is the hottest loop of the gateway.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from pydantic import TypeAdapter

from contracts import (
    FinishReason,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    TurnCompleted,
    TurnFailed,
    TurnUsage,
)
from services.gateway.http.errors import error_body, turn_failure_status
from services.gateway.http.sse import DONE, HEARTBEAT, json_frame

__all__ = [
    "DONE",
    "EXTRA_FIELD",
    "HEARTBEAT",
    "ChunkWriter",
    "choice_logprobs",
    "completion_body",
    "openai_tool_call",
    "output_mark",
    "usage_body",
]


# Marks an answer served from tokenbus's exact-response cache (OpenAI's field for
# "which backend configuration answered").
CACHE_FINGERPRINT = "tokenbus-cache"

# tokenbus's own additions to OpenAI's bodies sit under this one key, which the
# SDKs keep as an extra (`chunk.model_extra["tokenbus"]`) and otherwise ignore.
EXTRA_FIELD = "tokenbus"

# OpenAI has no "cancelled"; a cut-short answer ends like one that was stopped.
_FINISH: dict[str, str] = {"cancelled": "stop"}

_TOKENS: TypeAdapter[tuple[TokenLogprob, ...]] = TypeAdapter(tuple[TokenLogprob, ...])
# A delta chunk that carries its tokens' logprobs: between the text and finish_reason.
_LOGPROBS_OPEN = b'},"logprobs":{"content":'
_LOGPROBS_CLOSE = b',"refusal":null},"finish_reason":null}]}\n\n'


def choice_logprobs(tokens: tuple[TokenLogprob, ...]) -> dict[str, Any] | None:
    """A choice's `logprobs` as OpenAI writes it; None (null) when there are none."""
    if not tokens:
        return None
    return {"content": _TOKENS.dump_python(tokens, mode="json"), "refusal": None}


def output_mark(done: TurnCompleted) -> dict[str, Any] | None:
    """Whether the answer fit its response_format, for the last chunk or the body; None: none."""
    if done.output_valid is None:
        return None
    mark: dict[str, Any] = {"output_valid": done.output_valid}
    if done.output_error is not None:
        mark["output_error"] = done.output_error
    return mark


def openai_tool_call(call: ToolCall) -> dict[str, Any]:
    """A whole call in OpenAI's shape, as a message's `tool_calls` carries it."""
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def usage_body(usage: TurnUsage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


class ChunkWriter:
    """SSE lines for one streamed completion."""

    def __init__(self, completion_id: str, model: str, include_usage: bool) -> None:
        self._head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
        }
        self._include_usage = include_usage
        head = orjson.dumps(self._head)[:-1]
        usage_null = b',"usage":null' if include_usage else b""
        self._delta_prefix = (
            b"data: " + head + usage_null + b',"choices":[{"index":0,"delta":{"content":'
        )
        self._delta_suffix = b'},"logprobs":null,"finish_reason":null}]}\n\n'

    def role(self) -> bytes:
        return self._event([{"index": 0, "delta": {"role": "assistant", "content": ""},
                             "logprobs": None, "finish_reason": None}])  # fmt: skip

    def delta(self, text: str, logprobs: tuple[TokenLogprob, ...] = ()) -> bytes:
        if logprobs:
            return (
                self._delta_prefix
                + orjson.dumps(text)
                + _LOGPROBS_OPEN
                + _TOKENS.dump_json(logprobs)
                + _LOGPROBS_CLOSE
            )
        return self._delta_prefix + orjson.dumps(text) + self._delta_suffix

    def tool_calls(self, pieces: tuple[ToolCallDelta, ...]) -> bytes:
        """Pieces of tool calls in OpenAI's streamed shape: id, type and name on a call's first."""
        calls: list[dict[str, Any]] = []
        for piece in pieces:
            function: dict[str, Any] = {"arguments": piece.arguments}
            call: dict[str, Any] = {"index": piece.index}
            if piece.id is not None:
                call["id"] = piece.id
                call["type"] = "function"
            if piece.name is not None:
                function["name"] = piece.name
            call["function"] = function
            calls.append(call)
        return self._event([{"index": 0, "delta": {"tool_calls": calls},
                             "logprobs": None, "finish_reason": None}])  # fmt: skip

    def finish(
        self, reason: FinishReason, from_cache: bool = False, mark: dict[str, Any] | None = None
    ) -> bytes:
        if from_cache:
            self._head["system_fingerprint"] = CACHE_FINGERPRINT
        return self._event([{"index": 0, "delta": {}, "logprobs": None,
                             "finish_reason": _FINISH.get(reason, reason)}], mark)  # fmt: skip

    def usage(self, usage: TurnUsage | None) -> bytes:
        if not self._include_usage:
            return b""
        body = {**self._head, "choices": [], "usage": usage_body(usage)}
        return json_frame(body)

    def error(self, failure: TurnFailed) -> bytes:
        # A failed stream ends with an error object and no [DONE], so no client
        # can mistake a broken answer for a complete one.
        body = error_body(failure.message, turn_failure_status(failure.code), failure.code)
        return json_frame(body)

    def _event(self, choices: list[dict[str, Any]], mark: dict[str, Any] | None = None) -> bytes:
        body: dict[str, Any] = {**self._head, "choices": choices}
        if self._include_usage:
            body["usage"] = None
        if mark is not None:
            body[EXTRA_FIELD] = mark
        return json_frame(body)


def completion_body(
    completion_id: str,
    model: str,
    text: str,
    finish: FinishReason,
    usage: TurnUsage | None,
    from_cache: bool = False,
    tool_calls: tuple[ToolCall, ...] = (),
    mark: dict[str, Any] | None = None,
    logprobs: tuple[TokenLogprob, ...] = (),
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        # As OpenAI answers a message that only calls tools: no text is null, not "".
        message["content"] = text or None
        message["tool_calls"] = [openai_tool_call(c) for c in tool_calls]
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": CACHE_FINGERPRINT if from_cache else None,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": choice_logprobs(logprobs),
                "finish_reason": _FINISH.get(finish, finish),
            }
        ],
        "usage": usage_body(usage),
    }
    if mark is not None:
        body[EXTRA_FIELD] = mark
    return body
