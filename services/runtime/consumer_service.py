"""The whole life of a service that is one JetStream worker: connect, consume, drain."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from services.runtime.bus import Bus, connect
from services.runtime.lifecycle import until_stopped
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
) -> None:
    """`make_handler` gets the connected bus, for handlers that publish or read state."""
    bus = await connect(nats_url, name=f"tokenbus-{config.durable}")
    await ensure_streams(bus.js)
    worker = JetStreamWorker(bus.js, config, decode, make_handler(bus))
    running = asyncio.create_task(worker.run())
    log.info("consumer ready", extra={"durable": config.durable, "stream": config.stream})
    try:
        await until_stopped(stop, running)
    finally:
        worker.stop()
        await running
        await bus.close()
