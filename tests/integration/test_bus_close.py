"""Closing the bus at shutdown, whatever became of its server, on a real nats-server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import uvloop

from services.runtime.bus import connect
from services.runtime.embedded_nats import NatsServerProcess


async def _close_after_the_server_is_gone(store: Path) -> None:
    server = NatsServerProcess(store).start()
    try:
        bus = await connect(server.url, name="tests-bus-close")
        await bus.nc.subscribe("tests.close.>")
    finally:
        server.stop()
    async with asyncio.timeout(10):
        while not bus.nc.is_reconnecting:
            await asyncio.sleep(0.05)
    # Buffered for a server that will not come back: nats-py writes this into the
    # dead socket while closing unless the bus drops it first.
    await bus.nc.publish("tests.close.x", b"never delivered")
    async with asyncio.timeout(5):
        await bus.close()
    assert bus.nc.is_closed


def test_a_bus_whose_server_is_gone_closes_without_raising(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # On uvloop, as every service runs: its closed transport is what raised.
    with caplog.at_level(logging.WARNING):
        uvloop.run(_close_after_the_server_is_gone(tmp_path))
    assert not [r for r in caplog.records if r.exc_info]
