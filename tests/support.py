"""Real servers for tests: nats-server and the whole `tokenbus up` stack."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
from openai import AsyncOpenAI

from contracts.subjects import REQUESTS_STREAM
from services.runtime.embedded_nats import NatsServerProcess, free_port


def docker_engine_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def running_nats(store_dir: Path) -> Iterator[str]:
    """testcontainers' NATS module when a Docker engine answers, else the local binary."""
    if docker_engine_answers():
        from testcontainers.community.nats import NatsContainer

        with NatsContainer(jetstream=True) as container:
            yield container.nats_uri()
        return
    with NatsServerProcess(store_dir) as server:
        yield server.url


@dataclass(frozen=True)
class Stack:
    gateway_url: str
    nats_url: str
    upstream_url: str
    state_dir: Path
    process: subprocess.Popen[str]

    @property
    def api_key(self) -> str:
        """The dev key `tokenbus up` issued (tenant "dev", user "dev")."""
        return (self.state_dir / "dev-api-key").read_text().strip()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def openai(self) -> AsyncOpenAI:
        """The unmodified openai SDK on this gateway; no retries, so a test sees every answer."""
        return AsyncOpenAI(base_url=f"{self.gateway_url}/v1", api_key=self.api_key, max_retries=0)

    def pid(self, name: str) -> int:
        pids: dict[str, int] = json.loads((self.state_dir / "pids.json").read_text())
        return pids[name]

    def log(self, name: str) -> str:
        path = self.state_dir / "logs" / f"{name}.log"
        return path.read_text() if path.exists() else ""


def stop_process(process: subprocess.Popen[Any], timeout_s: float = 60.0) -> None:
    """SIGTERM (if it still runs), then SIGKILL if it has not exited within `timeout_s`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_stack(
    state_dir: Path,
    *extra_args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> Iterator[Stack]:
    """`tokenbus up` as a user runs it, on free ports; stopped with SIGTERM afterwards."""
    port, nats_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli.main",
            "up",
            "--port",
            str(port),
            "--nats-port",
            str(nats_port),
            "--model-port",
            "0",
            "--state-dir",
            str(state_dir),
            *extra_args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    ready = threading.Event()
    lines: list[str] = []
    upstream: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if found := re.match(r"tokenbus model upstream: (\S+)", line):
                upstream.append(found.group(1))
            if re.match(r"tokenbus is up: ", line):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while not ready.wait(0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("tokenbus up did not start:\n" + "".join(lines[-40:]))
        yield Stack(
            gateway_url=f"http://127.0.0.1:{port}",
            nats_url=f"nats://127.0.0.1:{nats_port}",
            upstream_url=upstream[0],
            state_dir=state_dir,
            process=process,
        )
    finally:
        stop_process(process)
        reader.join(timeout=5)


@contextlib.contextmanager
def extra_gateway(stack: Stack, **settings: str) -> Iterator[str]:
    """Another gateway replica on the stack's bus; yields its URL, stops it afterwards."""
    with gateway_process(stack, **settings) as (url, _):
        yield url


@contextlib.contextmanager
def gateway_process(stack: Stack, **settings: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like extra_gateway, with the process (to signal it); logs to the state dir."""
    port = free_port()
    env = {
        **os.environ,
        "TOKENBUS_NATS_URL": stack.nats_url,
        "TOKENBUS_GATEWAY_PORT": str(port),
        **{f"TOKENBUS_GATEWAY_{k.upper()}": v for k, v in settings.items()},
    }
    log = (stack.state_dir / "logs" / f"gateway-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.gateway.main"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the extra gateway did not become ready")
            time.sleep(0.1)
        yield url, process
    finally:
        stop_process(process)
        log.close()


async def requests_published(stack: Stack) -> int:
    """How many requests ever reached the bus (the stream's last sequence).

    Title requests share the stream: count on conversations that are already titled.
    """
    nc = await nats.connect(stack.nats_url)
    try:
        return int((await nc.jetstream().stream_info(REQUESTS_STREAM)).state.last_seq)
    finally:
        await nc.close()


def issue_key(stack: Stack, tenant: str, user: str, *limits: str) -> tuple[str, str]:
    """(key id, key) from `tokenbus keys create`, run as an operator would."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli.main", "keys", "--nats-url", stack.nats_url,
         "create", "--tenant", tenant, "--user", user, "--name", "test", *limits],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    key = done.stdout.rsplit(": ", 1)[1].strip()
    return done.stdout.split()[0], key


def keys_command(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", "keys", "--nats-url", stack.nats_url, *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
