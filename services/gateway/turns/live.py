"""Starting a turn on the bus and following its events as they arrive."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

from pydantic import ValidationError

from contracts import (
    ChatRequest,
    TurnCompleted,
    TurnFailed,
    parse_turn_event,
)
from contracts.subjects import CHAT_REQUEST_SUBJECT
from services.gateway.http.errors import ApiError, bus_unavailable
from services.gateway.metrics import TurnTiming
from services.gateway.turns.control import request_cancel
from services.gateway.turns.items import Heartbeat, Reset, TurnCursor, TurnItem, TurnRef
from services.gateway.turns.relay import RESYNC, TurnRelay
from services.gateway.turns.replay import replay_turn
from services.runtime.bus import Bus
from services.runtime.images import ImageStore
from services.runtime.telemetry import with_trace_context

__all__ = ["TurnEvents", "bus_unavailable", "publish_request", "start_turn", "store_images"]

log = logging.getLogger("tokenbus.gateway")

_DEADLINE_GRACE_S = 5.0


class TurnEvents:
    """The live events of one turn in order, ending with TurnCompleted or TurnFailed.

    It keeps the turn's ids and deadline, not its request: a stream stays open for the
    whole answer, and a request carries the conversation so far.
    """

    def __init__(
        self,
        bus: Bus,
        relay: TurnRelay,
        request: ChatRequest,
        heartbeat_s: float,
        cancel_grace_s: float = 0.0,
    ) -> None:
        self._bus = bus
        self._cancel_grace_s = cancel_grace_s
        self._relay = relay
        self._queue = relay.open(request.turn_id)
        self._turn = TurnRef.of(request)
        self._gateway_id = request.gateway_id
        self._patience_s = _patience(request)
        self._heartbeat_s = heartbeat_s
        self._cursor = TurnCursor()
        self._ended = False
        self._timing = TurnTiming(request.model)

    @property
    def turn(self) -> TurnRef:
        return self._turn

    @property
    def gateway_id(self) -> str:
        """The gateway the turn's events are addressed to (this one)."""
        return self._gateway_id

    def buffered(self) -> int:
        """Events already here, not yet read: the next ones come without a wait."""
        return len(self._queue)

    def close(self) -> None:
        """Stop listening; if the turn is still running, the client left: cancel it."""
        self._relay.close(self._turn.turn_id)
        if not self._ended:
            self._ended = True
            request_cancel(
                self._bus, self._turn.conversation_id, self._turn.turn_id, self._cancel_grace_s
            )

    def forget(self) -> None:
        """Stop listening without cancelling (the request never reached the bus)."""
        self._ended = True
        self._relay.close(self._turn.turn_id)

    async def __aiter__(self) -> AsyncIterator[TurnItem]:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._patience_s
        while True:
            wait = min(self._heartbeat_s, give_up_at - loop.time())
            if wait <= 0:
                self._ended = True
                yield self._timed_out()
                return
            try:
                raw = await self._queue.get(wait)
            except TimeoutError:
                if loop.time() < give_up_at:
                    yield Heartbeat()
                continue
            if raw is RESYNC:
                break
            try:
                event = parse_turn_event(raw)
            except ValidationError:
                log.warning("dropped an event that breaks the contract")
                continue
            for item in self._cursor.admit(event):
                if self._relayed(item):
                    yield item
                    return
                yield item
            if self._cursor.gap:
                break
        # Live events were missed (a gap in `seq`, or this connection was down): the
        # turns stream has them all, so the rest is read from there, in order.
        async for item in self._from_stream(give_up_at - loop.time()):
            yield item

    async def _from_stream(self, patience_s: float) -> AsyncIterator[TurnItem]:
        turn = self._turn
        self._relay.close(turn.turn_id)
        log.info("reading the turn from the stream", extra={"turn_id": turn.turn_id})
        async for item in replay_turn(
            self._bus,
            turn.conversation_id,
            turn.turn_id,
            self._cursor.position,
            self._heartbeat_s,
            max(patience_s, 0.0),
        ):
            if not isinstance(item, Heartbeat | Reset):
                self._cursor.position = (item.attempt, item.seq)
            if self._relayed(item):
                yield item
                return
            yield item
        self._ended = True
        yield self._timed_out()

    def _relayed(self, item: TurnItem) -> bool:
        """Note the item; True when it is the turn's last."""
        self._timing.see(item)
        if isinstance(item, TurnCompleted | TurnFailed):
            self._ended = True
            return True
        return False

    def _timed_out(self) -> TurnFailed:
        return TurnFailed(
            correlation_id=self._turn.correlation_id,
            conversation_id=self._turn.conversation_id,
            turn_id=self._turn.turn_id,
            attempt=max(self._cursor.position[0], 1),
            seq=self._cursor.position[1] + 1,
            code="timeout",
            message="No answer arrived before the deadline.",
            retryable=True,
        )


def _patience(request: ChatRequest) -> float:
    """Seconds to wait for the turn's last event. The generator gives up at the deadline
    and says so; the grace covers the case where no generator is alive to say anything."""
    if request.deadline_at is None:
        return 3600.0
    left = (request.deadline_at - request.occurred_at).total_seconds()
    return max(left, 0.0) + _DEADLINE_GRACE_S


async def store_images(images: ImageStore, uploads: Mapping[str, bytes]) -> None:
    """Keep a request's image bytes where the generator reads them; before it is published."""
    try:
        for name, data in uploads.items():
            await images.put(name, data)
    except Exception as exc:
        log.warning("storing an image failed", extra={"error_type": type(exc).__name__})
        raise bus_unavailable() from None


async def publish_request(bus: Bus, request: ChatRequest) -> None:
    """Queue the request for a generator; 413 if it is too big for the bus, 503 if the bus
    refuses it."""
    payload = request.model_dump_json().encode()
    # Retrying would not help, so not the 503 a failed publish gets.
    if len(payload) > bus.nc.max_payload:
        raise ApiError(
            413,
            f"The request is {len(payload)} bytes on the bus, which carries at most "
            f"{bus.nc.max_payload} (image bytes do not count: they are stored apart).",
            "request_too_large",
            "messages",
        )
    try:
        await bus.js.publish(
            CHAT_REQUEST_SUBJECT,
            payload,
            # The turn id as message id: a repeated publish is dropped by JetStream.
            # traceparent makes the generator's work part of this request's trace.
            headers=with_trace_context({"Nats-Msg-Id": request.turn_id}),
        )
    except Exception as exc:
        log.warning("publish failed", extra={"error_type": type(exc).__name__})
        raise bus_unavailable() from None


async def start_turn(
    bus: Bus,
    relay: TurnRelay,
    request: ChatRequest,
    heartbeat_s: float,
    cancel_grace_s: float = 0.0,
) -> TurnEvents:
    """Publish the request and return its live events; close() them when done.

    The inbox is opened before the publish, so even the first event is caught.
    """
    events = TurnEvents(bus, relay, request, heartbeat_s, cancel_grace_s)
    try:
        await publish_request(bus, request)
    except ApiError:
        events.forget()
        raise
    return events
