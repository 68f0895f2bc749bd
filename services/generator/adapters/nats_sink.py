"""Turn events onto JetStream, on the subject of the gateway replica that relays the turn."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from nats.js.api import PubAck

from contracts import ChatRequest
from contracts.subjects import EVENT_KINDS, turn_event_subject
from services.generator.ports import TurnEventOut
from services.runtime.bus import Bus
from services.runtime.telemetry import with_trace_context

__all__ = ["NatsEventSink"]

# How long a turn's last acks may lag behind its final event before they are resent.
_ACK_PATIENCE_S = 2.0


@dataclass(frozen=True, slots=True)
class _Sent:
    ack: asyncio.Future[PubAck]
    subject: str
    payload: bytes
    headers: dict[str, str]


class NatsEventSink:
    """Tokens go out without waiting for their acks; the final event waits for all of them.

    Waiting per token would put a round trip between two tokens. But a stream that
    elects a new leader (a node died) drops what it gets meanwhile, and one
    connection's publish order does not make a later ack cover earlier messages.
    So every event is acked, the acks are collected, and before a turn's final
    event anything unacked is sent again under its message id (a copy that did
    land is dropped by the stream as a duplicate).
    """

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._unacked: dict[tuple[str, int], list[_Sent]] = {}
        # The turn's trace context, read once: every event of a turn is published
        # from the same span, and propagating it per token was measurable.
        self._trace: dict[tuple[str, int], dict[str, str]] = {}

    async def emit(self, request: ChatRequest, event: TurnEventOut) -> asyncio.Future[PubAck]:
        """Publish without waiting; the returned ack is what the coalescer waits on."""
        key = (event.turn_id, event.attempt)
        trace = self._trace.get(key)
        if trace is None:
            trace = self._trace[key] = with_trace_context({})
        subject, payload, headers = self._encode(request, event, trace)
        ack = await self._bus.js.publish_async(subject, payload, headers=dict(headers))
        self._unacked.setdefault(key, []).append(_Sent(ack, subject, payload, headers))
        return ack

    async def emit_final(self, request: ChatRequest, event: TurnEventOut) -> None:
        key = (event.turn_id, event.attempt)
        self._trace.pop(key, None)
        await self._settle(self._unacked.pop(key, []))
        subject, payload, headers = self._encode(request, event, with_trace_context({}))
        await self._bus.js.publish(subject, payload, headers=headers)

    async def _settle(self, sent: list[_Sent]) -> None:
        if not sent:
            return
        await asyncio.wait([s.ack for s in sent], timeout=_ACK_PATIENCE_S)
        for item in sent:
            if item.ack.done() and not item.ack.cancelled() and item.ack.exception() is None:
                continue
            if not item.ack.done():
                item.ack.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                # Acked publish; the bus retries it through a leader election.
                await self._bus.js.publish(item.subject, item.payload, headers=item.headers)

    @staticmethod
    def _encode(
        request: ChatRequest, event: TurnEventOut, trace: dict[str, str]
    ) -> tuple[str, bytes, dict[str, str]]:
        subject = turn_event_subject(
            request.gateway_id, event.conversation_id, event.turn_id, EVENT_KINDS[event.type]
        )
        # Same turn, attempt and position -> same id: JetStream drops the duplicate.
        msg_id = f"{event.turn_id}.{event.attempt}.{event.seq}"
        # traceparent: readers of the event (usage, the gateway's recorder) join the turn's trace.
        return subject, event.model_dump_json().encode(), {"Nats-Msg-Id": msg_id, **trace}
