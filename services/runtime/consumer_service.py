"""The whole life of a service that is one JetStream worker: connect, consume, drain.

With a metrics port, it also serves /metrics and keeps its consumer's lag current.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from services.runtime.bus import Bus, connect
from services.runtime.consumer_lag import watch_consumer_lag
from services.runtime.lifecycle import until_stopped
from services.runtime.metrics_server import MetricsServer
from services.runtime.topology import ensure_streams
from services.runtime.worker import Handler, JetStreamWorker, WorkerConfig

__all__ = ["serve_consumer"]

log = logging.getLogger("tokenbus.service")

T = TypeVar("T")


async def serve_consumer(
    *,
    nats_url: str,
    config: WorkerConfig,
    decode: Callable[[bytes], T],
    make_handler: Callable[[Bus], Handler[T]],
    stop: asyncio.Event,
    metrics_host: str = "127.0.0.1",
    metrics_port: int = 0,
) -> None:
    """`make_handler` gets the connected bus, for handlers that publish or read state."""
    bus = await connect(nats_url, name=f"tokenbus-{config.durable}")
    await ensure_streams(bus.js)
    metrics = await MetricsServer.start(metrics_host, metrics_port)
    lag = asyncio.create_task(watch_consumer_lag(bus.js, [(config.stream, config.durable)]))
    worker = JetStreamWorker(bus.js, config, decode, make_handler(bus))
    running = asyncio.create_task(worker.run())
    log.info("consumer ready", extra={"durable": config.durable, "stream": config.stream})
    try:
        await until_stopped(stop, running)
    finally:
        worker.stop()
        await running
        lag.cancel()
        await metrics.stop()
        await bus.close()
