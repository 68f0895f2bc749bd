"""Reading one turn's events back from JetStream: stored ones first, then live.

This is how a client resumes on any gateway replica, how a retried request
with the same Idempotency-Key attaches to its first turn, and how a job's
status is known: the stream is the record of every turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from nats.js.api import DeliverPolicy
from pydantic import ValidationError

from contracts import TurnCompleted, TurnFailed, parse_turn_event
from contracts.subjects import TURNS_STREAM, turn_filter
from services.gateway.turns.control import announce_attach, request_cancel
from services.gateway.turns.items import (
    EventPosition,
    Heartbeat,
    TurnCursor,
    TurnItem,
    TurnRef,
    interrupted,
)
from services.runtime.bus import Bus

__all__ = ["ReplayedTurn", "replay_turn", "turn_events_kept"]

log = logging.getLogger("tokenbus.gateway.replay")


async def replay_turn(
    bus: Bus,
    conversation_id: str,
    turn_id: str,
    after: EventPosition = (0, 0),
    heartbeat_s: float = 15.0,
    patience_s: float = 3600.0,
) -> AsyncIterator[TurnItem]:
    """Every event of the turn past `after`, in order, ending with its final event.

    Yields Heartbeat while waiting; stops after `patience_s` without a final event.
    Events stored out of order (re-sent after a bus fault) are put back in order; a
    turn that lost one ends with `stream_interrupted` instead of its final event.
    """
    sub = await bus.js.subscribe(
        turn_filter(conversation_id, turn_id),
        stream=TURNS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    cursor = TurnCursor(after)
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + patience_s
    try:
        while loop.time() < give_up_at:
            try:
                msg = await sub.next_msg(timeout=min(heartbeat_s, give_up_at - loop.time()))
            except TimeoutError:
                yield Heartbeat()
                continue
            try:
                event = parse_turn_event(msg.data)
            except ValidationError:
                log.warning("skipped an event that breaks the contract")
                continue
            for item in cursor.admit(event):
                yield item
                if isinstance(item, TurnCompleted | TurnFailed):
                    return
            # The stream holds a turn's events in publish order, and the generator publishes
            # its final event only once every earlier one is stored (re-sent if need be):
            # a final event past a gap means the gap will never fill.
            lost = cursor.held_final()
            if lost is not None:
                log.warning("turn lost an event", extra={"turn_id": turn_id})
                yield interrupted(lost)
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def turn_events_kept(bus: Bus, conversation_id: str, turn_id: str) -> bool:
    """The stream still holds the turn's events (within the replay window, not purged)."""
    kept = await bus.js.stream_info(
        TURNS_STREAM, subjects_filter=turn_filter(conversation_id, turn_id)
    )
    return bool(kept.state.subjects)


class ReplayedTurn:
    """A TurnFeed read back from the stream (a retried request attaching to its turn).

    Closing it early cancels the turn, unless `cancels` is False: a background
    response runs on whoever stops reading it.
    """

    def __init__(
        self,
        bus: Bus,
        turn: TurnRef,
        heartbeat_s: float,
        cancel_grace_s: float = 0.0,
        *,
        cancels: bool = True,
    ) -> None:
        self._bus = bus
        self._turn = turn
        self._heartbeat_s = heartbeat_s
        self._cancel_grace_s = cancel_grace_s
        self._cancels = cancels
        self._ended = False

    @property
    def turn(self) -> TurnRef:
        return self._turn

    async def __aiter__(self) -> AsyncIterator[TurnItem]:
        t = self._turn
        # A reader is back: a cancel its turn's first reader left with a grace must not fire.
        announce_attach(self._bus, t.conversation_id, t.turn_id)
        async for item in replay_turn(
            self._bus, t.conversation_id, t.turn_id, heartbeat_s=self._heartbeat_s
        ):
            if isinstance(item, TurnCompleted | TurnFailed):
                self._ended = True
            yield item

    def close(self) -> None:
        if self._cancels and not self._ended:
            self._ended = True
            request_cancel(
                self._bus, self._turn.conversation_id, self._turn.turn_id, self._cancel_grace_s
            )
