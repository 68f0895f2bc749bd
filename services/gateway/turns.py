"""The vocabulary of a turn as the gateway reads it: items, position, transcript, feeds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from contracts import ChatRequest, TurnCompleted, TurnDelta, TurnFailed, TurnUsage

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
    """A turn's text and usage as its items arrive; a reset drops what came before."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self.usage: TurnUsage | None = None

    def add(self, item: TurnItem) -> None:
        if isinstance(item, Reset):
            self._parts.clear()
            self.usage = None
        elif isinstance(item, TurnDelta):
            self._parts.append(item.text)
        elif isinstance(item, TurnUsage):
            self.usage = item

    @property
    def text(self) -> str:
        return "".join(self._parts)


class TurnCursor:
    """Where a reader is in a turn: drops duplicates, announces restarts."""

    def __init__(self, after: EventPosition = (0, 0)) -> None:
        self.position = after

    def admit(self, event: TurnEvent) -> list[TurnItem]:
        here = (event.attempt, event.seq)
        if here <= self.position:
            return []
        restarted = self.position != (0, 0) and event.attempt > self.position[0]
        self.position = here
        return [Reset(event.attempt), event] if restarted else [event]


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
