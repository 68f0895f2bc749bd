"""The three ways to reach the same simulator: direct, through tokenbus, through LiteLLM."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.loadgen import API_KEY
from bench.procstats import command, descendants, kill_survivors, start_time

__all__ = [
    "LITELLM_SPEC",
    "Route",
    "ensure_litellm",
    "free_port",
    "is_front",
    "litellm_config",
    "running_litellm",
    "running_simulator",
    "running_tokenbus",
    "tokenbus_argv",
]

BENCH = Path(__file__).resolve().parent
LITELLM_VENV = BENCH / ".venv-litellm"
LITELLM = LITELLM_VENV / "bin" / "litellm"
# 1.108+ needs a certifi newer than the package index has; 1.107.0 was compromised.
LITELLM_SPEC = "litellm[proxy]<1.107"
# The labels that make up the route's front door: its memory per open stream is reported.
FRONT = ("gateway", "litellm")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Route:
    """One route under test: where clients connect, and which processes do its work."""

    name: str
    base_url: str
    root_pid: int | None = None
    argv: tuple[str, ...] = ()
    # RSS (KB) per process after warm-up: memory per stream is measured against it.
    idle_rss_kb: dict[str, int] = field(default_factory=dict)

    def pids(self) -> dict[str, int]:
        """Process label -> pid for every live process doing this route's work."""
        if self.root_pid is None:
            return {}
        # Read afresh at every level: LiteLLM's process tree changes under load.
        pids = [self.root_pid, *descendants(self.root_pid)]
        labels: dict[str, int] = {}
        for pid in pids:
            label = _label(pid, self.name)
            n = 1
            while (label if n == 1 else f"{label}#{n}") in labels:
                n += 1
            labels[label if n == 1 else f"{label}#{n}"] = pid
        return labels


def is_front(label: str) -> bool:
    """Whether a process label belongs to the route's front door (gateway or proxy)."""
    return label.split("#")[0] in FRONT


def _label(pid: int, route: str) -> str:
    cmd = command(pid)
    if "services.cli" in cmd or "tokenbus up" in cmd:
        return "supervisor"
    for part in ("gateway", "generator", "titler", "usage", "nats-server", "model_server"):
        if f"services.{part}" in cmd or cmd.split(" ")[0].endswith(part):
            return "nats" if part == "nats-server" else part
    if "upstream_sim" in cmd:
        return "simulator"
    return "litellm" if route == "litellm" else f"pid{pid}"


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # bounded by the deadline
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} at start")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s}s")


@contextlib.contextmanager
def _process(
    argv: list[str],
    ready_url: str,
    log: Path,
    timeout_s: float = 120,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run argv in its own process group until the block ends, however it ends."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "TOKENBUS_DEV_API_KEY": API_KEY,
                 **(env or {})},
        )  # fmt: skip
    # Children may start sessions of their own (tokenbus does): remember them all,
    # so none outlives the harness even if the parent dies before stopping them.
    known: dict[int, int | None] = {}
    try:
        _wait_http(ready_url, process, timeout_s)
        known = {pid: start_time(pid) for pid in descendants(process.pid)}
        yield process
    finally:
        known.update({pid: start_time(pid) for pid in descendants(process.pid)})
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            start_time(pid) == started for pid, started in known.items() if started is not None
        ):
            time.sleep(0.1)  # children stop on their parent's SIGTERM; give them a moment
        if survivors := kill_survivors(known):
            print(f"bench: killed leftover processes {survivors} of {argv[0]}", file=sys.stderr)


@contextlib.contextmanager
def running_simulator(ttft_ms: float, itl_ms: float, tokens: int, work: Path) -> Iterator[Route]:
    """The upstream simulator; as a route, it is 'direct'."""
    port = free_port()
    argv = [
        *(sys.executable, "-m", "bench.upstream_sim", "--port", str(port)),
        *("--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms), "--tokens", str(tokens)),
    ]
    url = f"http://127.0.0.1:{port}"
    with _process(argv, f"{url}/health", work / "simulator.log") as process:
        yield Route("direct", url, root_pid=process.pid, argv=tuple(argv))


def tokenbus_argv(port: int, sim: Route, work: Path, generators: int | None = None) -> list[str]:
    """The `tokenbus up` command line for a gateway on `port` in front of the simulator.

    `generators` None: as many as `tokenbus up` chooses for this machine (its default).
    """
    script = Path(sys.executable).with_name("tokenbus")
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "services.cli.main"]
    count = [] if generators is None else ["--generators", str(generators)]
    return [
        *launcher, "up", "--port", str(port), "--nats-port", "0",
        *("--state-dir", str(work / "tokenbus")),
        *("--upstream-url", f"{sim.base_url}/v1", "--model", "sim"), *count,
    ]  # fmt: skip


@contextlib.contextmanager
def running_tokenbus(
    sim: Route, work: Path, generators: int | None = None, pythonpath: Path | None = None
) -> Iterator[Route]:
    """`tokenbus up` routing the model 'sim' to the simulator; SIGTERM stops its children.

    `pythonpath`: another source tree to run instead of this one (a baseline).
    """
    # A fresh JetStream store each run: streams left by earlier runs would skew this one.
    shutil.rmtree(work / "tokenbus", ignore_errors=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = tokenbus_argv(port, sim, work, generators)
    env = None if pythonpath is None else {"PYTHONPATH": str(pythonpath)}
    # And run from there: `python -m` puts the working directory first on the path.
    log = work / "tokenbus.log"
    with _process(argv, f"{url}/readyz", log, env=env, cwd=pythonpath) as process:
        yield Route("tokenbus", url, root_pid=process.pid, argv=tuple(argv))


def ensure_litellm(log: Path) -> bool:
    """Create bench/.venv-litellm with LiteLLM's proxy on first use; False if that fails."""
    if LITELLM.exists():
        return True
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"bench: installing {LITELLM_SPEC} into {LITELLM_VENV} (once)", file=sys.stderr)
    with log.open("wb") as out:
        steps = [
            ["python3", "-m", "venv", str(LITELLM_VENV)],
            [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", LITELLM_SPEC],
        ]
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, timeout=900).returncode:
                print(f"bench: {' '.join(step)} failed, see {log}", file=sys.stderr)
                return False
    return LITELLM.exists()


def litellm_config(sim: Route) -> str:
    """One model, 'sim', routed to the simulator as an OpenAI-compatible upstream; no database."""
    return (
        "model_list:\n"
        "  - model_name: sim\n"
        "    litellm_params:\n"
        "      model: openai/sim\n"
        f"      api_base: {sim.base_url}/v1\n"
        "      api_key: unused\n"
        "general_settings:\n"
        f"  master_key: {API_KEY}\n"
    )


@contextlib.contextmanager
def running_litellm(sim: Route, work: Path) -> Iterator[Route]:
    """A LiteLLM proxy (one worker) in front of the simulator."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "litellm.yaml"
    config.write_text(litellm_config(sim))
    port = free_port()
    argv = [str(LITELLM), "--config", str(config), "--port", str(port), "--num_workers", "1"]
    url = f"http://127.0.0.1:{port}"
    with _process(argv, f"{url}/health/liveliness", work / "litellm.log", timeout_s=180) as p:
        yield Route("litellm", url, root_pid=p.pid, argv=tuple(argv))
