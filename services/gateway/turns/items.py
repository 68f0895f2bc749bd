"""The vocabulary of a turn as the gateway reads it: items, position, transcript, feeds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from contracts import (
    ChatRequest,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    TurnCompleted,
    TurnDelta,
    TurnFailed,
    TurnUsage,
)

__all__ = [
    "EventPosition",
    "Heartbeat",
    "Reset",
    "TurnCursor",
    "TurnEvent",
    "TurnFeed",
    "TurnItem",
    "TurnRef",
    "TurnTranscript",
    "interrupted",
    "restarted_after_text",
]


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Nothing happened for a heartbeat interval; the SSE layer sends a comment."""


@dataclass(frozen=True, slots=True)
class Reset:
    """The turn started over on another generator (the first one died): drop what came so far."""

    attempt: int


TurnEvent = TurnDelta | TurnUsage | TurnCompleted | TurnFailed
TurnItem = TurnEvent | Heartbeat | Reset
EventPosition = tuple[int, int]
"""(attempt, seq): every event of a later attempt comes after all of an earlier one."""


class TurnTranscript:
    """A turn's text, tool calls, logprobs and usage as its items arrive; a reset drops them."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._calls: dict[int, _CallParts] = {}
        self._logprobs: list[TokenLogprob] = []
        self.usage: TurnUsage | None = None

    def add(self, item: TurnItem) -> None:
        if isinstance(item, Reset):
            self._parts.clear()
            self._calls.clear()
            self._logprobs.clear()
            self.usage = None
        elif isinstance(item, TurnDelta):
            self._parts.append(item.text)
            for piece in item.tool_calls:
                self._calls.setdefault(piece.index, _CallParts()).add(piece)
            self._logprobs.extend(item.logprobs)
        elif isinstance(item, TurnUsage):
            self.usage = item

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def logprobs(self) -> tuple[TokenLogprob, ...]:
        """The answer's tokens with their log probabilities, in order; empty unless asked."""
        return tuple(self._logprobs)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """The calls the model made, whole, in the order of their index."""
        return tuple(parts.call() for _, parts in sorted(self._calls.items()))


class _CallParts:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []

    def add(self, piece: ToolCallDelta) -> None:
        self.id = piece.id or self.id
        self.name = piece.name or self.name
        self.arguments.append(piece.arguments)

    def call(self) -> ToolCall:
        # A call always starts with its id and name; a provider that broke that rule
        # still gets a well-formed call rather than a crash here.
        return ToolCall(
            id=self.id or "call_missing",
            name=self.name or "unknown",
            arguments="".join(self.arguments),
        )


class TurnCursor:
    """Where a reader is in a turn: events in `seq` order, duplicates dropped, restarts announced.

    An event ahead of the next expected `seq` is held back, not relayed: relaying it
    would silently shorten the answer. The reader sees `gap` and either fills it (the
    missing event arrives late, e.g. re-sent after a bus restart, and the held ones
    follow it) or, if the turn's final event is among the held ones, knows the turn
    lost an event for good (`held_final`).
    """

    def __init__(self, after: EventPosition = (0, 0)) -> None:
        self.position = after
        self._held: dict[int, TurnEvent] = {}

    @property
    def gap(self) -> bool:
        """Events arrived past one that has not: what follows the gap is held back."""
        return bool(self._held)

    def held_final(self) -> TurnCompleted | TurnFailed | None:
        """The turn's final event, if it came but an event before it has not."""
        for event in self._held.values():
            if isinstance(event, TurnCompleted | TurnFailed):
                return event
        return None

    def admit(self, event: TurnEvent) -> list[TurnItem]:
        attempt, seq = self.position
        if event.attempt < attempt:
            return []
        items: list[TurnItem] = []
        if event.attempt > attempt:
            if self.position != (0, 0):
                items.append(Reset(event.attempt))
            self._held.clear()
            attempt, seq = event.attempt, 0
            self.position = (attempt, seq)
        if event.seq <= seq:
            return items
        if event.seq > seq + 1:
            self._held.setdefault(event.seq, event)
            return items
        items.append(event)
        seq = event.seq
        while (following := self._held.pop(seq + 1, None)) is not None:
            items.append(following)
            seq += 1
        self.position = (attempt, seq)
        return items


@dataclass(frozen=True, slots=True)
class TurnRef:
    """Which turn a feed follows."""

    conversation_id: str
    turn_id: str
    model: str
    correlation_id: str

    @classmethod
    def of(cls, request: ChatRequest) -> TurnRef:
        return cls(request.conversation_id, request.turn_id, request.model, request.correlation_id)


class TurnFeed(Protocol):
    """A turn's events as a response consumes them, live or replayed."""

    @property
    def turn(self) -> TurnRef: ...

    def __aiter__(self) -> AsyncIterator[TurnItem]: ...

    def close(self) -> None:
        """The response is done with the feed; if the turn still runs, its reader left."""
        ...


def interrupted(final: TurnCompleted | TurnFailed) -> TurnFailed:
    """Relayed instead of a final event that came past a lost one: never a short answer."""
    return TurnFailed(
        correlation_id=final.correlation_id,
        conversation_id=final.conversation_id,
        turn_id=final.turn_id,
        tenant_id=final.tenant_id,
        user_id=final.user_id,
        attempt=final.attempt,
        seq=final.seq,
        code="stream_interrupted",
        message="Part of the answer was lost on its way; please retry.",
        retryable=True,
    )


def restarted_after_text(turn: TurnRef) -> TurnFailed:
    """How a stream ends whose sent text a restarted attempt would contradict: none of the
    wire formats can take text back."""
    return TurnFailed(
        correlation_id=turn.correlation_id,
        conversation_id=turn.conversation_id,
        turn_id=turn.turn_id,
        seq=1,
        code="upstream_error",
        message="The answer was interrupted; please retry.",
        retryable=True,
    )
