"""Reading what the stream holds of one turn so far, without waiting for more."""

from __future__ import annotations

import contextlib
import logging

from nats.js.api import DeliverPolicy
from pydantic import ValidationError

from contracts import parse_turn_event
from contracts.subjects import TURNS_STREAM, turn_filter
from services.gateway.turns.items import TurnEvent
from services.runtime.bus import Bus

__all__ = ["stored_turn_events"]

log = logging.getLogger("tokenbus.gateway.jobs")

# Only a safety net: every message counted as stored is delivered at once.
_DELIVERY_TIMEOUT_S = 2.0


async def stored_turn_events(bus: Bus, conversation_id: str, turn_id: str) -> list[TurnEvent]:
    """Every event of the turn stored so far, in stream order; raises TimeoutError if stuck."""
    subject = turn_filter(conversation_id, turn_id)
    # A queued job has no events yet: one request says so, with no consumer to set up.
    info = await bus.js.stream_info(TURNS_STREAM, subjects_filter=subject)
    if not info.state.subjects:
        return []
    sub = await bus.js.subscribe(
        subject, stream=TURNS_STREAM, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    events: list[TurnEvent] = []
    try:
        while True:
            msg = await sub.next_msg(timeout=_DELIVERY_TIMEOUT_S)
            try:
                events.append(parse_turn_event(msg.data))
            except ValidationError:
                log.warning("skipped an event that breaks the contract")
            # The consumer's own count of what is still stored past this message.
            if msg.metadata.num_pending == 0:
                return events
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
