"""Metering what an attempt relayed before its generator died.

A generator killed mid-turn never reports the usage of its attempt, yet the
provider billed the prompt and every token it streamed. The attempt that takes
the turn over reads the earlier attempts' events back from the bus and reports,
on behalf of each one that ended without usage, what it relayed: estimated, and
marked so. A restarted turn is then metered as the sum of its attempts.

The same read tells a redelivery whose turn already ended (its generator
finished, but the ack was lost, say in a leader election) from a turn whose
generator died: the first is dropped, or the turn would end twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from contracts import ChatRequest, TurnCompleted, TurnDelta, TurnFailed, TurnUsage
from services.generator.ports import EventSink, TurnEventOut, TurnHistory

__all__ = [
    "AttemptTally",
    "earlier_events",
    "meter_lost_attempts",
    "turn_ended",
    "unmetered_attempts",
]

log = logging.getLogger("tokenbus.generator")


@dataclass(slots=True)
class AttemptTally:
    attempt: int
    chunks: int = 0
    last_seq: int = 0
    metered: bool = False


def unmetered_attempts(events: list[TurnEventOut], before: int) -> list[AttemptTally]:
    """Attempts earlier than `before` that relayed something and reported no usage."""
    tallies: dict[int, AttemptTally] = {}
    for event in events:
        if event.attempt >= before:
            continue
        tally = tallies.setdefault(event.attempt, AttemptTally(event.attempt))
        tally.last_seq = max(tally.last_seq, event.seq)
        if isinstance(event, TurnDelta):
            tally.chunks += 1
        elif isinstance(event, TurnUsage):
            tally.metered = True
    return [t for _, t in sorted(tallies.items()) if not t.metered and t.chunks]


async def earlier_events(
    request: ChatRequest, attempt: int, history: TurnHistory
) -> list[TurnEventOut]:
    """What the turn's attempts before this one published; empty for a first attempt."""
    if attempt <= 1:
        return []
    try:
        return [e for e in await history.events(request) if e.attempt < attempt]
    except Exception as exc:  # reading back must never stop the turn itself
        log.warning("earlier attempts not read", extra={"error_type": type(exc).__name__})
        return []


def turn_ended(earlier: list[TurnEventOut]) -> bool:
    return any(isinstance(e, TurnCompleted | TurnFailed) for e in earlier)


async def meter_lost_attempts(
    request: ChatRequest,
    earlier: list[TurnEventOut],
    attempt: int,
    sink: EventSink,
    estimate_prompt: int,
) -> None:
    """Report the usage that earlier, dead attempts of this turn could not."""
    lost = unmetered_attempts(earlier, before=attempt)
    for tally in lost:
        usage = TurnUsage(
            correlation_id=request.correlation_id,
            conversation_id=request.conversation_id,
            turn_id=request.turn_id,
            tenant_id=request.tenant_id,
            user_id=request.user_id,
            key_id=request.key_id,
            # Its own attempt and the next position in it: readers already past that
            # attempt drop it, and a repeat of this report is a duplicate on the bus.
            attempt=tally.attempt,
            seq=tally.last_seq + 1,
            model=request.model,
            provider_model=request.model,
            input_tokens=estimate_prompt,
            output_tokens=tally.chunks,
            estimated=True,
        )
        # Acked: the report must be on the bus before this attempt's own events.
        await sink.emit_final(request, usage)
        log.info(
            "metered a lost attempt",
            extra={"turn_id": request.turn_id, "attempt": tally.attempt},
        )
