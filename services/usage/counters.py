"""Usage totals on JetStream counters (Nats-Incr), deduplicated by message id."""

from __future__ import annotations

from nats.js import JetStreamContext

__all__ = ["NatsUsageCounters"]


class NatsUsageCounters:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def add(self, subject: str, amount: int, once_id: str) -> None:
        # No stream= here: the server rejects counter increments that name it (10171).
        await self._js.publish(
            subject, b"", headers={"Nats-Incr": str(amount), "Nats-Msg-Id": once_id}
        )
