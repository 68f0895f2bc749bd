"""Run a set of child processes as one unit: prefixed logs, ordered start, reverse stop.

A child marked `restart` that dies is started again, like a process manager
would (a crashed generator must not take the whole stack down); one that keeps
dying, or any other child that dies, stops everything: a half-running stack is
worse than none. Children get SIGTERM when the supervisor dies (Linux
PR_SET_PDEATHSIG), so a killed supervisor leaves no orphans behind.
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

__all__ = ["ChildSpec", "StackFailed", "Supervisor"]

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
    restart: bool = False


@dataclass
class _Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process
    pump: asyncio.Task[None]
    restarts: list[float] = field(default_factory=list)


_MAX_RESTARTS_PER_MINUTE = 5


class Supervisor:
    def __init__(
        self, log_dir: Path, out: TextIO = sys.stdout, pid_file: Path | None = None
    ) -> None:
        self._log_dir = log_dir
        self._pid_file = pid_file
        self._out = out
        self._children: list[_Child] = []
        self._width = 10

    @property
    def pids(self) -> dict[str, int]:
        return {c.spec.name: c.process.pid for c in self._children}

    async def start(self, spec: ChildSpec) -> None:
        """Start one child and wait until it reports ready (or fail)."""
        process, pump = await self._spawn(spec)
        self._children.append(_Child(spec, process, pump))
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
            self._pid_file.write_text(json.dumps(pids))
        return process, pump

    async def _wait_ready(self, spec: ChildSpec, process: asyncio.subprocess.Process) -> None:
        assert spec.ready is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + spec.ready_timeout_s
        while loop.time() < deadline:
            if process.returncode is not None:
                raise StackFailed(f"{spec.name} exited with code {process.returncode} at start")
            with contextlib.suppress(Exception):
                if await spec.ready():
                    return
            await asyncio.sleep(0.1)
        raise StackFailed(f"{spec.name} was not ready after {spec.ready_timeout_s:.0f}s")

    async def supervise(self) -> str:
        """Restart children that may be restarted; return the name of one that may not."""
        while True:
            waits = {asyncio.create_task(c.process.wait()): c for c in self._children}
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            for task in done:
                child = waits[task]
                if not self._may_restart(child):
                    return child.spec.name
                self._out.write(
                    f"{child.spec.name:<{self._width}}| exited with code "
                    f"{child.process.returncode}; restarting\n"
                )
                child.process, child.pump = await self._spawn(child.spec)

    def _may_restart(self, child: _Child) -> bool:
        if not child.spec.restart:
            return False
        now = time.monotonic()
        child.restarts = [t for t in child.restarts if now - t < 60] + [now]
        return len(child.restarts) <= _MAX_RESTARTS_PER_MINUTE

    async def stop_all(self) -> None:
        """SIGTERM in reverse start order, each given its grace period, then SIGKILL."""
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

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        prefix = f"{name:<{self._width}}| "
        with (self._log_dir / f"{name}.log").open("a", encoding="utf-8") as log_file:
            while line := await stream.readline():
                text = line.decode("utf-8", errors="replace").rstrip("\n")
                log_file.write(text + "\n")
                log_file.flush()
                self._out.write(prefix + text + "\n")
                self._out.flush()
