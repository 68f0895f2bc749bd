"""The three ways to reach the same simulator: direct, through tokenbus, through LiteLLM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.procstats import command, descendants
from services.runtime.embedded_nats import free_port

__all__ = [
    "API_KEY",
    "Route",
    "litellm_available",
    "running_direct",
    "running_litellm",
    "running_tokenbus",
]

BENCH = Path(__file__).parent
LITELLM = BENCH / ".venv-litellm" / "bin" / "litellm"
# Every client sends this bearer token; LiteLLM requires a master key to start.
API_KEY = "sk-bench-local-only"


@dataclass
class Route:
    """One route under test: where clients connect, and which processes do its work."""

    name: str
    base_url: str
    root_pid: int | None = None
    own_pids: list[int] = field(default_factory=list)

    def pids(self) -> dict[str, int]:
        """Process label -> pid, for every process doing this path's work."""
        pids = list(self.own_pids)
        if self.root_pid is not None:
            pids += descendants(self.root_pid)
        return {_label(pid): pid for pid in pids}

    def front_pid(self) -> int | None:
        """The process clients talk to (its memory per open stream is reported)."""
        for label, pid in self.pids().items():
            if label in {"gateway", "litellm"}:
                return pid
        return None


def _label(pid: int) -> str:
    cmd = command(pid)
    for part in ("gateway", "generator", "titler", "usage", "nats-server", "litellm"):
        if part in cmd:
            return "nats" if part == "nats-server" else part
    return f"pid{pid}"


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s}s")


@contextlib.contextmanager
def _process(argv: list[str], ready_url: str, timeout_s: float = 120) -> Iterator[int]:
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_http(ready_url, process, timeout_s)
        yield process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def running_simulator(ttft_ms: float, itl_ms: float, tokens: int) -> Iterator[Route]:
    port = free_port()
    argv = [
        *(sys.executable, "-m", "bench.upstream_sim", "--port", str(port)),
        *("--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms), "--tokens", str(tokens)),
    ]
    url = f"http://127.0.0.1:{port}"
    with _process(argv, f"{url}/health") as pid:
        yield Route("direct", url, own_pids=[pid])


@contextlib.contextmanager
def running_direct(sim: Route) -> Iterator[Route]:
    yield Route("direct", sim.base_url)


@contextlib.contextmanager
def running_tokenbus(sim: Route, work: Path) -> Iterator[Route]:
    port = free_port()
    argv = [
        *(sys.executable, "-m", "services.cli.main", "up", "--port", str(port)),
        *("--nats-port", "0", "--state-dir", str(work / "tokenbus")),
        *("--upstream-url", f"{sim.base_url}/v1", "--model", "sim"),
    ]
    url = f"http://127.0.0.1:{port}"
    with _process(argv, f"{url}/readyz") as pid:
        yield Route("tokenbus", url, root_pid=pid)


def litellm_available() -> bool:
    return LITELLM.exists()


@contextlib.contextmanager
def running_litellm(sim: Route, work: Path) -> Iterator[Route]:
    work.mkdir(parents=True, exist_ok=True)
    config = work / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: sim\n"
        "    litellm_params:\n"
        "      model: openai/sim\n"
        f"      api_base: {sim.base_url}/v1\n"
        "      api_key: unused\n"
        "general_settings:\n"
        f"  master_key: {API_KEY}\n"
    )
    port = free_port()
    argv = [str(LITELLM), "--config", str(config), "--port", str(port), "--num_workers", "1"]
    url = f"http://127.0.0.1:{port}"
    with _process(argv, f"{url}/health/liveliness", timeout_s=180) as pid:
        yield Route("litellm", url, root_pid=None, own_pids=[pid, *descendants(pid)])
