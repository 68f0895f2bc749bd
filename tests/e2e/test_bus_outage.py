"""The bus stops answering: requests get a prompt 503, readiness turns false, nothing leaks.

nats-server is frozen with SIGSTOP (its TCP connections stay open, so only a
round trip shows it is gone), then thawed; a stack of its own, since every
process loses its bus meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Stack, running_stack

pytestmark = pytest.mark.e2e

BODY = {
    "model": "smollm2-135m",
    "messages": [{"role": "user", "content": "Hello"}],
    "max_tokens": 4,
}


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("outage"))) as stack:
        yield stack


async def wait_for(check: object, seconds: float) -> float:
    """Seconds until the async predicate holds (fails the test past `seconds`)."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        while not await check():  # type: ignore[operator]
            await asyncio.sleep(0.2)
    return time.monotonic() - started


async def test_a_frozen_bus_gives_503_and_unready_then_recovers(outage_stack: Stack) -> None:
    nats_pid = outage_stack.pid("nats")
    async with httpx.AsyncClient(
        base_url=outage_stack.gateway_url, headers=outage_stack.auth, timeout=30
    ) as http:
        assert (await http.post("/v1/chat/completions", json=BODY)).status_code == 200
        os.kill(nats_pid, signal.SIGSTOP)
        try:

            async def unready() -> bool:
                return (await http.get("/readyz")).status_code == 503

            # A probe is a round trip of at most a second; the connection's own pings
            # give up within a few more.
            assert await wait_for(unready, 8) < 8
            started = time.monotonic()
            refused = await http.post("/v1/chat/completions", json=BODY)
            waited = time.monotonic() - started
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "bus_unavailable"
            assert refused.headers["retry-after"]
            assert waited < 3.5  # the configured bound (2 s), not minutes
        finally:
            os.kill(nats_pid, signal.SIGCONT)

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await wait_for(ready, 30)

        async def answers() -> bool:
            return (await http.post("/v1/chat/completions", json=BODY)).status_code == 200

        await wait_for(answers, 30)
    for name in ("gateway", "generator", "titler", "usage"):
        assert "Traceback" not in outage_stack.log(name), name
