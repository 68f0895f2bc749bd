"""A turn's earlier events, read back from the turns stream."""

from __future__ import annotations

import contextlib

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from contracts import ChatRequest, parse_turn_event
from contracts.subjects import TURNS_STREAM, turn_filter
from services.generator.ports import TurnEventOut

__all__ = ["StreamTurnHistory"]

_BATCH = 256
_FETCH_TIMEOUT_S = 2.0


class StreamTurnHistory:
    """Reads with a short-lived pull consumer: no acks, gone by itself once idle."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def events(self, request: ChatRequest) -> list[TurnEventOut]:
        sub = await self._js.pull_subscribe(
            turn_filter(request.conversation_id, request.turn_id),
            stream=TURNS_STREAM,
            config=ConsumerConfig(
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                inactive_threshold=10.0,
                mem_storage=True,
            ),
        )
        found: list[TurnEventOut] = []
        try:
            # Fetch exactly what is there: a fetch of more waits out its whole timeout.
            pending = (await sub.consumer_info()).num_pending or 0
            while pending > 0:
                msgs = await sub.fetch(batch=min(pending, _BATCH), timeout=_FETCH_TIMEOUT_S)
                pending -= len(msgs)
                for msg in msgs:
                    with contextlib.suppress(ValidationError):
                        found.append(parse_turn_event(msg.data))
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return found
