"""The whole life of a service that is one JetStream worker: connect, consume, drain.

With a metrics port, it also serves /metrics and keeps its consumer's lag current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from services.runtime.bus import Bus, connect
from services.runtime.consumer_lag import watch_consumer_lag
from services.runtime.lifecycle import until_stopped
from services.runtime.metrics_server import MetricsServer
from services.runtime.topology import ensure_streams
from services.runtime.worker import Handler, JetStreamWorker, WorkerConfig

__all__ = ["HandlerScope", "plain_handler", "serve_consumer"]

log = logging.getLogger("tokenbus.service")

T = TypeVar("T")

# Builds the handler on the connected bus and closes what it holds (clients, pools)
# once the worker has stopped using it.
HandlerScope = Callable[[Bus], AbstractAsyncContextManager[Handler[T]]]


def plain_handler(make: Callable[[Bus], Handler[T]]) -> HandlerScope[T]:
    """A scope for a handler that holds nothing of its own to close."""

    @contextlib.asynccontextmanager
    async def scope(bus: Bus) -> AsyncIterator[Handler[T]]:
        yield make(bus)

    return scope


async def serve_consumer(
    *,
    nats_url: str,
    config: WorkerConfig,
    decode: Callable[[bytes], T],
    handler_scope: HandlerScope[T],
    stop: asyncio.Event,
    metrics_host: str = "127.0.0.1",
    metrics_port: int = 0,
) -> None:
    bus = await connect(nats_url, name=f"tokenbus-{config.durable}")
    async with contextlib.AsyncExitStack() as cleanup:
        # Closed in reverse: the handler's resources, the metrics, then the bus.
        cleanup.push_async_callback(bus.close)
        await ensure_streams(bus.js)
        metrics = await MetricsServer.start(metrics_host, metrics_port)
        cleanup.push_async_callback(metrics.stop)
        lag = asyncio.create_task(watch_consumer_lag(bus.js, [(config.stream, config.durable)]))
        cleanup.callback(lag.cancel)
        handler = await cleanup.enter_async_context(handler_scope(bus))
        worker = JetStreamWorker(bus.js, config, decode, handler)
        running = asyncio.create_task(worker.run())
        log.info("consumer ready", extra={"durable": config.durable, "stream": config.stream})
        try:
            await until_stopped(stop, running)
        finally:
            worker.stop()
            await running
