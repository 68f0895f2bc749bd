"""Consumer lag as gauges, refreshed from JetStream's consumer info."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from nats.js import JetStreamContext

from services.runtime.metrics import CONSUMER_ACK_PENDING, CONSUMER_PENDING, CONSUMER_REDELIVERED

__all__ = ["refresh_consumer_lag", "watch_consumer_lag"]

log = logging.getLogger("tokenbus.metrics")

DEFAULT_INTERVAL_S = 5.0


async def refresh_consumer_lag(js: JetStreamContext, stream: str, durable: str) -> None:
    info = await js.consumer_info(stream, durable)
    CONSUMER_PENDING.labels(stream, durable).set(info.num_pending or 0)
    CONSUMER_ACK_PENDING.labels(stream, durable).set(info.num_ack_pending or 0)
    CONSUMER_REDELIVERED.labels(stream, durable).set(info.num_redelivered or 0)


async def watch_consumer_lag(
    js: JetStreamContext,
    consumers: Sequence[tuple[str, str]],
    interval_s: float = DEFAULT_INTERVAL_S,
) -> None:
    """Refresh the lag of each (stream, durable) every `interval_s` until cancelled."""
    while True:
        for stream, durable in consumers:
            try:
                await refresh_consumer_lag(js, stream, durable)
            except Exception as exc:
                # Not there yet (created by the worker's first fetch) or the bus is away:
                # keep the last value; the next round tries again.
                log.debug("consumer lag not read", extra={"error_type": type(exc).__name__})
        await asyncio.sleep(interval_s)
