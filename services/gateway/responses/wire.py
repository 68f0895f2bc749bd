"""OpenAI's Responses wire format: the response object, its output items and stream events."""

from __future__ import annotations

from typing import Any

from contracts import FinishReason, ToolCall
from services.gateway.http.sse import json_frame

__all__ = [
    "EventWriter",
    "Usage",
    "failure_error",
    "function_call_item",
    "message_item",
    "output_items",
    "response_body",
    "usage_body",
    "wire_status",
]

Usage = tuple[int, int, int]
"""(input tokens, output tokens, of the input: cached tokens)."""

# OpenAI's ResponseError.code is a closed list; tokenbus's own code goes in the message.
_ERROR_CODES: dict[str, str] = {
    "rate_limited": "rate_limit_exceeded",
    "invalid_request": "invalid_prompt",
    "context_length_exceeded": "invalid_prompt",
    "content_filtered": "invalid_prompt",
}


def wire_status(finish: FinishReason) -> tuple[str, dict[str, str] | None]:
    """The response's status, and why it is incomplete when it is."""
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    if finish == "cancelled":
        return "cancelled", None
    return "completed", None


def failure_error(code: str, message: str) -> dict[str, Any]:
    return {"code": _ERROR_CODES.get(code, "server_error"), "message": f"{message} ({code})"}


def usage_body(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    input_tokens, output_tokens, cached = usage
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    """An assistant message; `text` None while its one part has not been added yet."""
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [],
                                        "logprobs": []}]  # fmt: skip
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": content}  # fmt: skip


def function_call_item(item_id: str, call: ToolCall, status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call.id,
            "name": call.name, "arguments": call.arguments}  # fmt: skip


def output_items(
    turn_id: str, text: str, calls: tuple[ToolCall, ...], status: str
) -> list[dict[str, Any]]:
    """A whole answer's output: its text as one message (if any), then each call."""
    items: list[dict[str, Any]] = []
    if text or not calls:
        items.append(message_item(message_id(turn_id), text, status))
    items.extend(
        function_call_item(call_item_id(turn_id, n), call, status) for n, call in enumerate(calls)
    )
    return items


def message_id(turn_id: str) -> str:
    return f"msg_{turn_id}"


def call_item_id(turn_id: str, index: int) -> str:
    return f"fc_{turn_id}_{index}"


def response_body(
    response_id: str,
    settings: dict[str, Any],
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None = None,
    *,
    model: str | None = None,
    error: dict[str, Any] | None = None,
    incomplete: dict[str, str] | None = None,
    completed_at: int | None = None,
) -> dict[str, Any]:
    """The response object; `settings` is the request's echo (translate.ResponseTurn.settings),
    its `created_at` included."""
    body: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "status": status,
        "background": False,
        "completed_at": completed_at,
        "error": error,
        "incomplete_details": incomplete,
        "max_tool_calls": None,
        "output": output,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "truncation": "disabled",
        "usage": usage_body(usage),
        **settings,
    }
    if model is not None:  # the model that answered, after any failover
        body["model"] = model
    return body


class EventWriter:
    """SSE events of one response, numbered in the order they are written.

    The numbering depends only on the turn's events, so a replay of the same turn
    numbers alike on any replica: `starting_after` writes nothing up to and
    including that number, which is how a client resumes a response's stream.
    """

    def __init__(self, starting_after: int = -1) -> None:
        self._seq = 0
        self._starting_after = starting_after

    @property
    def last(self) -> int:
        """The number of the last event written (or passed over); -1 before the first."""
        return self._seq - 1

    def event(self, kind: str, **fields: Any) -> bytes:
        seq = self._seq
        self._seq += 1
        if seq <= self._starting_after:
            return b""
        body = {"type": kind, "sequence_number": seq, **fields}
        # OpenAI names each event on its `event:` line too; the SDK reads the data's type.
        return json_frame(body, event=kind)
