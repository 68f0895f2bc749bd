"""Anthropic's Messages wire format out of a turn: the stream's events and the message body.

The stream is Anthropic's sequence: `message_start`, then content blocks
(`content_block_start`, `content_block_delta`s, `content_block_stop`): the text
as it comes, then one `tool_use` block per call. The first call's input streams
as it comes (`input_json_delta`); the others come whole once the answer ends,
because a call's pieces may interleave with another's upstream, which
Anthropic's one-block-at-a-time stream cannot express. Then `message_delta`
with `stop_reason` and the usage, and `message_stop`. Idle time is a `ping`
event; a failure ends the stream with an `error` event and no `message_stop`,
so it is never read as whole.
"""

from __future__ import annotations

import json
from typing import Any

from contracts import FinishReason, ToolCall, ToolCallDelta, TurnFailed, TurnUsage
from services.gateway.http.errors import anthropic_error_body, turn_failure_status
from services.gateway.http.sse import json_frame

__all__ = ["PING", "MessageStream", "message_body", "message_id", "stop_reason"]

_STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    # A turn the client cut short ends as one that was stopped.
    "cancelled": "end_turn",
}
PING = json_frame({"type": "ping"}, "ping")


def message_id(turn_id: str) -> str:
    return f"msg_{turn_id}"


def stop_reason(finish: FinishReason) -> str:
    return _STOP_REASONS.get(finish, "end_turn")


def _usage(usage: TurnUsage | None) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {
        "input_tokens": usage.input_tokens - usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
    }


def _tool_input(call: ToolCall) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        value = None
    # Anthropic's input is always an object; a model's broken JSON is kept, not lost.
    return value if isinstance(value, dict) else {"_raw_arguments": call.arguments}


class MessageStream:
    """The events of one message, in order; `text` and `call` may be called any number of times."""

    def __init__(self, message_id: str, model: str) -> None:
        self._id = message_id
        self._model = model
        self._blocks = 0  # content blocks closed so far: the open one's index
        self._text_open = False
        self._live_call: int | None = None
        """The index of the call whose tool_use block streams (the first call)."""
        self._live_open = False
        self._indices: set[int] = set()
        self._late_text: list[str] = []
        """Text that came while the live call's block was open: sent after it."""

    @property
    def started_content(self) -> bool:
        """Some content went out, which a restarted attempt could not take back."""
        return self._blocks > 0 or self._text_open or self._live_open

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The prompt's size is known only at the end: message_delta carries it.
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return json_frame({"type": "message_start", "message": message}, "message_start")

    def text(self, text: str) -> bytes:
        if self._live_open:
            self._late_text.append(text)
            return b""
        head = b""
        if not self._text_open:
            self._text_open = True
            block = {"type": "text", "text": ""}
            head = self._event("content_block_start", content_block=block)
        delta = {"type": "text_delta", "text": text}
        return head + self._event("content_block_delta", index=self._blocks, delta=delta)

    def call(self, piece: ToolCallDelta) -> bytes:
        """The live call's piece as it comes; another call's waits for the end (finish)."""
        head = b""
        self._indices.add(piece.index)
        if self._live_call is None:
            self._live_call = piece.index
            self._live_open = True
            head = self._close_text()
            block = {"type": "tool_use", "id": piece.id or "toolu_missing",
                     "name": piece.name or "unknown", "input": {}}  # fmt: skip
            head += self._event("content_block_start", content_block=block)
        if piece.index != self._live_call or not piece.arguments:
            return head
        delta = {"type": "input_json_delta", "partial_json": piece.arguments}
        return head + self._event("content_block_delta", delta=delta)

    def finish(
        self, finish: FinishReason, usage: TurnUsage | None, calls: tuple[ToolCall, ...]
    ) -> bytes:
        out = self._close_text() + self._close_live()
        if self._late_text:
            out += self.text("".join(self._late_text)) + self._close_text()
        # The calls come in the order of their index: which of them already streamed.
        live = None if self._live_call is None else sorted(self._indices).index(self._live_call)
        for n, call in enumerate(calls):
            if n == live:
                continue
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            out += self._event("content_block_start", content_block=block)
            delta = {"type": "input_json_delta", "partial_json": json.dumps(_tool_input(call))}
            out += self._event("content_block_delta", delta=delta) + self._stop()
        reason = {"stop_reason": stop_reason(finish), "stop_sequence": None}
        out += json_frame(
            {"type": "message_delta", "delta": reason, "usage": _usage(usage)}, "message_delta"
        )
        return out + json_frame({"type": "message_stop"}, "message_stop")

    def error(self, failure: TurnFailed) -> bytes:
        status = turn_failure_status(failure.code)
        return json_frame(anthropic_error_body(failure.message, status, failure.code), "error")

    def _close_text(self) -> bytes:
        if not self._text_open:
            return b""
        self._text_open = False
        return self._stop()

    def _close_live(self) -> bytes:
        if not self._live_open:
            return b""
        self._live_open = False
        return self._stop()

    def _stop(self) -> bytes:
        """Close the open block; the next one takes the next index."""
        stop = self._event("content_block_stop")
        self._blocks += 1
        return stop

    def _event(self, kind: str, **fields: Any) -> bytes:
        fields.setdefault("index", self._blocks)
        return json_frame({"type": kind, **fields}, kind)


def message_body(
    turn_id: str,
    model: str,
    text: str,
    calls: tuple[ToolCall, ...],
    finish: FinishReason,
    usage: TurnUsage | None,
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": _tool_input(c)} for c in calls
    ]
    return {
        "id": message_id(turn_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": None,
        "usage": _usage(usage),
    }
