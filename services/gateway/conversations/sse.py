"""The typed SSE events of the conversations API.

Every event that belongs to a turn has an `id:` of the form
`<turn_id>:<attempt>:<seq>`; a client that reconnects with that id in
`Last-Event-ID` gets exactly what came after it.
"""

from __future__ import annotations

import re
from typing import Any

from contracts import (
    ConversationTitled,
    ToolCall,
    TurnCompleted,
    TurnDelta,
    TurnFailed,
    TurnUsage,
)
from services.gateway.http.sse import HEARTBEAT, json_frame
from services.gateway.turns.items import EventPosition, Heartbeat, Reset, TurnItem

__all__ = [
    "InvalidEventId",
    "format_item",
    "parse_event_id",
    "titled",
    "tool_call",
    "turn_started",
]

_EVENT_ID = re.compile(r"^([A-Za-z0-9_-]{1,64}):([1-9][0-9]{0,5}):([1-9][0-9]{0,8})$")


class InvalidEventId(ValueError):
    """A Last-Event-ID this gateway never sent."""


def parse_event_id(value: str) -> tuple[str, EventPosition]:
    found = _EVENT_ID.match(value)
    if found is None:
        raise InvalidEventId(value)
    return found.group(1), (int(found.group(2)), int(found.group(3)))


def _event(name: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    return json_frame(data, name, event_id)


def turn_started(conversation_id: str, turn_id: str, model: str) -> bytes:
    """First event of a stream: which turn it is, so the client can cancel or resume it."""
    return _event("turn", {"conversation_id": conversation_id, "turn_id": turn_id, "model": model})


def titled(event: ConversationTitled) -> bytes:
    """The conversation got its title (after the first turn's `done`); no id: not a turn event."""
    return _event(
        "title",
        {"conversation_id": event.conversation_id, "title": event.title, "source": event.source},
    )


def tool_call(call: ToolCall) -> bytes:
    """A whole call, sent just before `done`; no id: it sums up the `tool_call_delta`s."""
    return _event("tool_call", {"id": call.id, "name": call.name, "arguments": call.arguments})


def format_item(item: TurnItem) -> bytes:
    if isinstance(item, Heartbeat):
        return HEARTBEAT
    if isinstance(item, Reset):
        return _event("reset", {"attempt": item.attempt})
    event_id = f"{item.turn_id}:{item.attempt}:{item.seq}"
    if isinstance(item, TurnDelta):
        if not item.tool_calls:
            return _event("delta", {"text": item.text}, event_id)
        pieces = _event(
            "tool_call_delta",
            {"tool_calls": [p.model_dump(exclude_none=True) for p in item.tool_calls]},
            event_id,
        )
        return (_event("delta", {"text": item.text}, event_id) if item.text else b"") + pieces
    if isinstance(item, TurnUsage):
        return _event(
            "usage",
            {
                "input_tokens": item.input_tokens,
                "output_tokens": item.output_tokens,
                "estimated": item.estimated,
                "cached": item.from_cache or item.similarity is not None,
                **({} if item.similarity is None else {"similarity": item.similarity}),
            },
            event_id,
        )
    if isinstance(item, TurnCompleted):
        done: dict[str, Any] = {
            "finish_reason": item.finish_reason,
            "model": item.model,
            "cached": item.from_cache,
        }
        if item.output_valid is not None:  # the message had a response_format
            done["output_valid"] = item.output_valid
            if item.output_error is not None:
                done["output_error"] = item.output_error
        return _event("done", done, event_id)
    assert isinstance(item, TurnFailed)
    return _event(
        "error",
        {"code": item.code, "message": item.message, "retryable": item.retryable},
        event_id,
    )
