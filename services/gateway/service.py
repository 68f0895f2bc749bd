"""Starting a turn on the bus and following its events as they arrive."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass

from pydantic import ValidationError

from contracts import (
    ChatRequest,
    TurnCompleted,
    TurnDelta,
    TurnFailed,
    TurnUsage,
    parse_turn_event,
)
from contracts.subjects import CHAT_REQUEST_SUBJECT, cancel_subject
from services.gateway.errors import ApiError
from services.gateway.relay import TurnRelay
from services.runtime.bus import Bus

__all__ = ["Heartbeat", "TurnEvents", "TurnItem", "start_turn"]

log = logging.getLogger("tokenbus.gateway")

_DEADLINE_GRACE_S = 5.0
_PUBLISH_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Nothing happened for a heartbeat interval; the SSE layer sends a comment."""


TurnItem = TurnDelta | TurnUsage | TurnCompleted | TurnFailed | Heartbeat


class TurnEvents:
    """The events of one turn in order, ending with TurnCompleted or TurnFailed."""

    def __init__(
        self, bus: Bus, relay: TurnRelay, request: ChatRequest, heartbeat_s: float
    ) -> None:
        self._bus = bus
        self._relay = relay
        self._queue = relay.open(request.turn_id)
        self._request = request
        self._heartbeat_s = heartbeat_s
        self._last_seq = 0
        self._ended = False

    @property
    def request(self) -> ChatRequest:
        return self._request

    def close(self) -> None:
        """Stop listening; if the turn is still running, the client left: cancel it.

        Synchronous on purpose: it runs in `finally` blocks of responses whose
        task is being cancelled, where an await would be cancelled too.
        """
        self._relay.close(self._request.turn_id)
        if not self._ended:
            self._ended = True
            _spawn(self._send_cancel())

    def forget(self) -> None:
        """Stop listening without cancelling (the request never reached the bus)."""
        self._ended = True
        self._relay.close(self._request.turn_id)

    async def _send_cancel(self) -> None:
        subject = cancel_subject(self._request.conversation_id, self._request.turn_id)
        try:
            await self._bus.nc.publish(subject, b"")
        except Exception as exc:
            log.warning("cancel not sent", extra={"error_type": type(exc).__name__})

    async def __aiter__(self) -> AsyncIterator[TurnItem]:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._patience()
        while True:
            wait = min(self._heartbeat_s, give_up_at - loop.time())
            if wait <= 0:
                self._ended = True
                yield self._timed_out()
                return
            try:
                raw = await asyncio.wait_for(self._queue.get(), wait)
            except TimeoutError:
                if loop.time() < give_up_at:
                    yield Heartbeat()
                continue
            try:
                event = parse_turn_event(raw)
            except ValidationError:
                log.warning("dropped an event that breaks the contract")
                continue
            if event.seq <= self._last_seq:
                continue  # a redelivered duplicate
            self._last_seq = event.seq
            if isinstance(event, TurnCompleted | TurnFailed):
                self._ended = True
                yield event
                return
            yield event

    def _patience(self) -> float:
        # The generator gives up at the deadline and says so; the grace covers
        # the case where no generator is alive to say anything.
        if self._request.deadline_at is None:
            return 3600.0
        left = (self._request.deadline_at - self._request.occurred_at).total_seconds()
        return max(left, 0.0) + _DEADLINE_GRACE_S

    def _timed_out(self) -> TurnFailed:
        return TurnFailed(
            correlation_id=self._request.correlation_id,
            conversation_id=self._request.conversation_id,
            turn_id=self._request.turn_id,
            seq=self._last_seq + 1,
            code="timeout",
            message="No answer arrived before the deadline.",
            retryable=True,
        )


async def start_turn(
    bus: Bus, relay: TurnRelay, request: ChatRequest, heartbeat_s: float
) -> TurnEvents:
    """Publish the request and return its live events; close() them when done.

    The inbox is opened before the publish, so even the first event is caught.
    """
    events = TurnEvents(bus, relay, request, heartbeat_s)
    try:
        await bus.js.publish(
            CHAT_REQUEST_SUBJECT,
            request.model_dump_json().encode(),
            timeout=_PUBLISH_TIMEOUT_S,
            headers={"Nats-Msg-Id": request.turn_id},
        )
    except Exception as exc:
        events.forget()
        log.warning("publish failed", extra={"error_type": type(exc).__name__})
        raise ApiError(
            503,
            "The gateway cannot queue requests right now; try again shortly.",
            "bus_unavailable",
            headers={"Retry-After": "1"},
        ) from None
    return events


_background: set[asyncio.Task[None]] = set()


def _spawn(work: Coroutine[None, None, None]) -> None:
    # Keep a reference until done: the loop holds tasks only weakly.
    task = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)
