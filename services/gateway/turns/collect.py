"""A turn read to its end, for the answers that are one body (not streamed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contracts import TurnCompleted, TurnFailed
from services.gateway.http.errors import ApiError, turn_failure_status
from services.gateway.turns.items import TurnFeed, TurnTranscript

__all__ = ["finished_turn"]

OnFinal = Callable[[TurnCompleted | TurnFailed, TurnTranscript], Awaitable[None]]


async def finished_turn(
    events: TurnFeed, on_final: OnFinal | None = None
) -> tuple[TurnCompleted, TurnTranscript]:
    """The turn's completion and all it said; a failure is raised as its ApiError.

    `on_final` sees the final event before either (a stored turn keeps its answer
    first). The feed is closed however this ends, so a caller that gives up
    cancels the turn.
    """
    transcript = TurnTranscript()
    try:
        async for item in events:
            transcript.add(item)
            if isinstance(item, TurnCompleted | TurnFailed) and on_final is not None:
                await on_final(item, transcript)
            if isinstance(item, TurnCompleted):
                return item, transcript
            if isinstance(item, TurnFailed):
                raise ApiError(turn_failure_status(item.code), item.message, item.code)
    finally:
        events.close()
    raise ApiError(502, "The turn ended without a result.", "upstream_error")
