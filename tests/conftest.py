from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.runtime.bus import Bus, connect
from services.runtime.topology import ensure_streams
from tests.support import Stack, running_nats, running_stack


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_nats(tmp_path_factory.mktemp("nats")) as url:
        yield url


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    connection = await connect(nats_url, name="tests")
    await ensure_streams(connection.js)
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The jobs tests' webhook receivers listen on loopback, which is refused unless allowed.
    allow_loopback = {"TOKENBUS_GATEWAY_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32"}
    with running_stack(Path(tmp_path_factory.mktemp("stack")), env=allow_loopback) as running:
        yield running
