"""Turn events onto JetStream, on the subject of the gateway replica that relays the turn."""

from __future__ import annotations

from contracts import ChatRequest
from contracts.subjects import EVENT_KINDS, turn_event_subject
from services.generator.ports import TurnEventOut
from services.runtime.bus import Bus

__all__ = ["NatsEventSink"]


class NatsEventSink:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def emit(self, request: ChatRequest, event: TurnEventOut) -> None:
        # A plain publish: the stream still stores it (its subjects match), the
        # gateway's live subscription gets it at once, and no ack round trip
        # sits between two tokens. emit_final's ack covers everything before it,
        # since one connection keeps publish order.
        subject, payload, headers = self._encode(request, event)
        await self._bus.nc.publish(subject, payload, headers=headers)

    async def emit_final(self, request: ChatRequest, event: TurnEventOut) -> None:
        subject, payload, headers = self._encode(request, event)
        await self._bus.js.publish(subject, payload, headers=headers)

    @staticmethod
    def _encode(request: ChatRequest, event: TurnEventOut) -> tuple[str, bytes, dict[str, str]]:
        subject = turn_event_subject(
            request.gateway_id, event.conversation_id, event.turn_id, EVENT_KINDS[event.type]
        )
        # Same turn, attempt and position -> same id: JetStream drops the duplicate.
        msg_id = f"{event.turn_id}.{event.attempt}.{event.seq}"
        return subject, event.model_dump_json().encode(), {"Nats-Msg-Id": msg_id}
