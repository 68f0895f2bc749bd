"""Connecting to NATS and JetStream."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

__all__ = ["Bus", "connect"]

log = logging.getLogger("tokenbus.bus")


class Bus:
    """One NATS connection and its JetStream context, owned by a composition root."""

    def __init__(self, nc: Client, js: JetStreamContext) -> None:
        self.nc = nc
        self.js = js
        self.closing = False

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def close(self) -> None:
        """Drain so in-flight publishes and acks reach the server before exit."""
        self.closing = True
        if self.nc.is_closed:
            return
        try:
            await self.nc.drain()
        except Exception as exc:  # closing anyway; a failed drain must not block shutdown
            log.warning("bus drain failed", extra={"error_type": type(exc).__name__})
            await self.nc.close()


async def connect(url: str, name: str) -> Bus:
    bus: Bus | None = None

    async def on_error(exc: Exception) -> None:
        log.warning("bus error", extra={"error_type": type(exc).__name__})

    async def on_disconnected() -> None:
        if bus is None or not bus.closing:  # a drain at shutdown is no news
            log.warning("bus disconnected")

    async def on_reconnected() -> None:
        log.info("bus reconnected")

    nc = await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
    )
    bus = Bus(nc, nc.jetstream())
    return bus
