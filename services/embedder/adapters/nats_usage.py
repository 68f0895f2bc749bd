"""Usage events of embeddings onto the turns stream, where the usage service meters them."""

from __future__ import annotations

from contracts import TurnUsage
from contracts.subjects import EMBEDDING_USAGE_GATEWAY, TURNS_STREAM, turn_event_subject
from services.runtime.bus import Bus

__all__ = ["NatsUsageSink"]


class NatsUsageSink:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def publish(self, usage: TurnUsage) -> None:
        subject = turn_event_subject(
            EMBEDDING_USAGE_GATEWAY, usage.conversation_id, usage.turn_id, "usage"
        )
        await self._bus.js.publish(
            subject,
            usage.model_dump_json().encode(),
            stream=TURNS_STREAM,
            headers={"Nats-Msg-Id": usage.event_id},
        )
