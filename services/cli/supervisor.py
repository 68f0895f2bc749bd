"""Run a set of child processes as one unit: prefixed logs, ordered start, reverse stop.

A child that dies is started again, like a process manager would: the stack
survives any one process dying, nats-server included (its JetStream data is on
disk, and it comes back on the same port). Restarts wait a back-off, 0.5 s
doubling up to 4 s, back to 0.5 s once a child has run for 30 s; a child that
dies more than 5 times within a minute stops everything, saying so: a stack
that cannot stay up is worse than none. Children get SIGTERM when the supervisor
dies (Linux PR_SET_PDEATHSIG), so a killed supervisor leaves no orphans behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

__all__ = ["ChildSpec", "RestartPolicy", "StackFailed", "Supervisor", "describe_exit"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class StackFailed(Exception):
    """A child exited, or never became ready."""


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[], Awaitable[bool]] | None = None
    ready_timeout_s: float = 60.0
    stop_timeout_s: float = 15.0
    restart: bool = True


@dataclass(frozen=True)
class RestartPolicy:
    max_per_minute: int = 5
    first_backoff_s: float = 0.5
    max_backoff_s: float = 4.0
    healthy_after_s: float = 30.0
    """A child that ran this long was healthy: its next restart waits the first back-off."""


@dataclass
class _Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process
    pump: asyncio.Task[None]
    backoff_s: float
    started_at: float = field(default_factory=time.monotonic)
    exits: list[float] = field(default_factory=list)
    """When it died, over the last minute."""


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


class Supervisor:
    def __init__(
        self,
        log_dir: Path,
        out: TextIO = sys.stdout,
        pid_file: Path | None = None,
        policy: RestartPolicy = RestartPolicy(),
    ) -> None:
        self._log_dir = log_dir
        self._pid_file = pid_file
        self._out = out
        self._policy = policy
        self._children: list[_Child] = []
        self._watchers: list[asyncio.Task[str]] = []
        self._width = 10

    @property
    def pids(self) -> dict[str, int]:
        return {c.spec.name: c.process.pid for c in self._children}

    async def start(self, spec: ChildSpec) -> None:
        """Start one child and wait until it reports ready (or fail)."""
        process, pump = await self._spawn(spec)
        self._children.append(_Child(spec, process, pump, self._policy.first_backoff_s))
        if spec.ready is not None:
            await self._wait_ready(spec, process)

    async def _spawn(
        self, spec: ChildSpec
    ) -> tuple[asyncio.subprocess.Process, asyncio.Task[None]]:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            *spec.argv,
            env={**os.environ, **spec.env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # Own session: Ctrl-C reaches only the supervisor, which stops the
            # children in order (gateway first, the bus last).
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        assert process.stdout is not None
        pump = asyncio.create_task(self._pump(spec.name, process.stdout))
        if self._pid_file is not None:
            pids = {**self.pids, spec.name: process.pid}
            # Replaced whole, never truncated then written: a reader (a script, a test
            # that kills a child) must not catch the file empty during a restart.
            fresh = self._pid_file.with_suffix(".tmp")
            fresh.write_text(json.dumps(pids))
            fresh.replace(self._pid_file)
        return process, pump

    async def _wait_ready(self, spec: ChildSpec, process: asyncio.subprocess.Process) -> None:
        if not await self._became_ready(spec, process):
            if process.returncode is not None:
                raise StackFailed(f"{spec.name} {describe_exit(process.returncode)} at start")
            raise StackFailed(f"{spec.name} was not ready after {spec.ready_timeout_s:.0f}s")

    async def _became_ready(self, spec: ChildSpec, process: asyncio.subprocess.Process) -> bool:
        """True once `spec.ready` says so; False if the process exits or time runs out first."""
        assert spec.ready is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + spec.ready_timeout_s
        while loop.time() < deadline and process.returncode is None:
            with contextlib.suppress(Exception):
                if await spec.ready():
                    return True
            await asyncio.sleep(0.1)
        return False

    async def supervise(self) -> str:
        """Restart children that die; return why the stack must stop, once it must."""
        self._watchers = [asyncio.create_task(self._watch(c)) for c in self._children]
        try:
            done, _ = await asyncio.wait(self._watchers, return_when=asyncio.FIRST_COMPLETED)
            return done.pop().result()
        finally:
            await self._stop_watching()

    async def _watch(self, child: _Child) -> str:
        """Restart one child each time it dies, until it may not be restarted any more."""
        name, policy = child.spec.name, self._policy
        while True:
            code = await child.process.wait()
            now = time.monotonic()
            if not child.spec.restart:
                return f"{name} {describe_exit(code)}"
            child.exits = [t for t in child.exits if now - t < 60] + [now]
            if len(child.exits) > policy.max_per_minute:
                return (
                    f"{name} {describe_exit(code)}: {len(child.exits)} exits within a minute, "
                    "not restarting it again"
                )
            if now - child.started_at >= policy.healthy_after_s:
                child.backoff_s = policy.first_backoff_s
            delay = child.backoff_s
            child.backoff_s = min(delay * 2, policy.max_backoff_s)
            self._say(name, f"{describe_exit(code)}; restarting in {delay:g}s")
            await asyncio.sleep(delay)
            try:
                await self._respawn(child)
            except OSError as exc:
                return f"{name} could not be restarted ({type(exc).__name__}: {exc})"
            self._say(name, f"restarted (pid {child.process.pid})")
            if child.spec.ready is not None:
                if await self._became_ready(child.spec, child.process):
                    self._say(name, f"ready again after {time.monotonic() - now:.1f}s")
                elif child.process.returncode is None:
                    self._say(name, f"not ready {child.spec.ready_timeout_s:.0f}s after restart")

    async def _respawn(self, child: _Child) -> None:
        spawning = asyncio.ensure_future(self._spawn(child.spec))
        try:
            child.process, child.pump = await asyncio.shield(spawning)
        except asyncio.CancelledError:
            # Stopping meanwhile: the new process must be known, so that it is stopped too.
            with contextlib.suppress(Exception):
                child.process, child.pump = await spawning
            raise
        child.started_at = time.monotonic()

    async def _stop_watching(self) -> None:
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []

    async def stop_all(self) -> None:
        """SIGTERM in reverse start order, each given its grace period, then SIGKILL."""
        await self._stop_watching()  # nothing is restarted from here on
        for child in reversed(self._children):
            process = child.process
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), child.spec.stop_timeout_s)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(child.pump, 2)
        self._children.clear()

    def _say(self, name: str, text: str) -> None:
        self._out.write(f"{name:<{self._width}}| {text}\n")
        self._out.flush()

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        prefix = f"{name:<{self._width}}| "
        with (self._log_dir / f"{name}.log").open("a", encoding="utf-8") as log_file:
            while line := await stream.readline():
                text = line.decode("utf-8", errors="replace").rstrip("\n")
                log_file.write(text + "\n")
                log_file.flush()
                self._out.write(prefix + text + "\n")
                self._out.flush()
