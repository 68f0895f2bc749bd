"""`tokenbus up` survives any one process dying: the gateway and nats-server included.

Runs its own stack, since it kills its parts; the last test stops it with the bus
gone, as a killed nats-server used to, and reads every process's log.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Stack, running_stack

pytestmark = pytest.mark.e2e

# From the kill to answering again: the restart back-off (0.5 s), the process's
# start, its bus connection and readiness, on a busy 2-core machine.
BACK_WITHIN_S = 30.0
PROCESSES = ("nats", "model", "generator", "titler", "usage", "gateway")


@pytest.fixture(scope="module")
def restart_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(Path(tmp_path_factory.mktemp("restarts"))) as stack:
        yield stack


@pytest.fixture
async def http(restart_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=restart_stack.gateway_url, headers=restart_stack.auth, timeout=30
    ) as client:
        yield client


ASK = {
    "model": "smollm2-135m",
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 5,
    "temperature": 0,
}


async def restarted(stack: Stack, name: str, old_pid: int) -> None:
    """Wait until `tokenbus up` has started `name` again (a new pid) and it is alive."""
    while True:
        pid = stack.pid(name)
        if pid != old_pid:
            os.kill(pid, 0)
            return
        await asyncio.sleep(0.05)


async def answering(http: httpx.AsyncClient) -> httpx.Response:
    """The first completion that is not refused for want of the gateway or the bus."""
    while True:
        try:
            if (await http.get("/readyz")).status_code == 200:
                response = await http.post("/v1/chat/completions", json=ASK)
                if response.status_code != 503:  # 503 bus_unavailable: retry, as documented
                    return response
        except httpx.TransportError:  # nothing listens yet
            pass
        await asyncio.sleep(0.1)


async def test_a_killed_gateway_is_restarted_and_answers_again(
    restart_stack: Stack, http: httpx.AsyncClient
) -> None:
    old = restart_stack.pid("gateway")
    os.kill(old, signal.SIGKILL)
    killed_at = time.monotonic()
    async with asyncio.timeout(BACK_WITHIN_S):
        await restarted(restart_stack, "gateway", old)
        response = await answering(http)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]
    assert restart_stack.process.poll() is None  # the stack kept running
    print(f"gateway answered again {time.monotonic() - killed_at:.1f}s after kill -9")


async def test_a_killed_nats_server_is_restarted_with_its_data_and_the_stack_answers_again(
    restart_stack: Stack, http: httpx.AsyncClient
) -> None:
    conversation_id = (await http.post("/v1/conversations", json={})).json()["id"]
    old = restart_stack.pid("nats")
    os.kill(old, signal.SIGKILL)
    killed_at = time.monotonic()
    async with asyncio.timeout(BACK_WITHIN_S):
        await restarted(restart_stack, "nats", old)
        response = await answering(http)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]
    print(f"stack answered again {time.monotonic() - killed_at:.1f}s after nats-server kill -9")
    # JetStream's store survived on disk: the conversation and the dev key are still there.
    stored = await http.get(f"/v1/conversations/{conversation_id}")
    assert stored.status_code == 200, stored.text
    assert restart_stack.process.poll() is None


async def test_no_process_logs_a_traceback_when_the_stack_stops_with_its_bus_gone(
    restart_stack: Stack,
) -> None:
    # nats-server dies and the stack is stopped before its restart: every service
    # shuts down with a connection that is reconnecting to nothing.
    nats_pid = restart_stack.pid("nats")
    os.kill(nats_pid, signal.SIGKILL)
    restart_stack.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(restart_stack.process.wait, 60)
    assert code == 0
    assert restart_stack.pid("nats") == nats_pid, "nats-server was restarted before the stop"
    logs = {name: restart_stack.log(name) for name in PROCESSES}
    assert "bus disconnected" in logs["gateway"]  # the shutdown did meet a lost bus
    for name, log in logs.items():
        assert "Traceback" not in log, f"{name}.log:\n{log[log.index('Traceback') - 2000 :]}"
