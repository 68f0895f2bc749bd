"""`tokenbus up`'s supervisor with real child processes: restarts, back-off, giving up."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import sys
from pathlib import Path

from services.cli.supervisor import ChildSpec, RestartPolicy, Supervisor

FAST = RestartPolicy(max_per_minute=5, first_backoff_s=0.05, max_backoff_s=0.2, healthy_after_s=30)


def delays(out: io.StringIO) -> list[str]:
    return re.findall(r"restarting in (\S+)s", out.getvalue())


async def test_a_child_that_keeps_dying_is_restarted_with_back_off_then_stops_the_stack(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    supervisor = Supervisor(tmp_path, out=out, policy=FAST)
    await supervisor.start(ChildSpec("crashy", [sys.executable, "-c", "raise SystemExit(3)"]))
    try:
        async with asyncio.timeout(30):
            reason = await supervisor.supervise()
    finally:
        await supervisor.stop_all()
    assert reason == "crashy exited with code 3: 6 exits within a minute, not restarting it again"
    assert delays(out) == ["0.05", "0.1", "0.2", "0.2", "0.2"]


async def test_the_back_off_starts_over_once_a_child_has_run_for_a_while(tmp_path: Path) -> None:
    out = io.StringIO()
    policy = RestartPolicy(max_per_minute=50, first_backoff_s=0.05, healthy_after_s=0.3)
    supervisor = Supervisor(tmp_path, out=out, policy=policy)
    lives = "import time; time.sleep(0.5)"
    await supervisor.start(ChildSpec("flaky", [sys.executable, "-c", lives]))
    watching = asyncio.create_task(supervisor.supervise())
    try:
        async with asyncio.timeout(30):
            while len(delays(out)) < 3:
                await asyncio.sleep(0.05)
    finally:
        watching.cancel()
        await supervisor.stop_all()
    assert delays(out)[:3] == ["0.05", "0.05", "0.05"]
    assert re.search(r"flaky +\| restarted \(pid \d+\)", out.getvalue())


async def test_a_killed_child_is_restarted_and_a_stopping_stack_restarts_nothing(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    pid_file = tmp_path / "pids.json"
    supervisor = Supervisor(tmp_path, out=out, pid_file=pid_file, policy=FAST)
    forever = "import time; print('up', flush=True); time.sleep(3600)"
    await supervisor.start(ChildSpec("sleeper", [sys.executable, "-c", forever]))
    watching = asyncio.create_task(supervisor.supervise())
    log = tmp_path / "sleeper.log"

    async def lives(n: int) -> None:
        async with asyncio.timeout(10):
            while not log.exists() or log.read_text() != "up\n" * n:  # one log, every life
                await asyncio.sleep(0.02)

    try:
        await lives(1)
        os.kill(supervisor.pids["sleeper"], signal.SIGKILL)
        await lives(2)
        second = supervisor.pids["sleeper"]
        assert json.loads(pid_file.read_text()) == {"sleeper": second}
        # Killed again, and the stack stops during the back-off: nothing is restarted.
        os.kill(second, signal.SIGKILL)
        await asyncio.sleep(0.02)
    finally:
        watching.cancel()
        await supervisor.stop_all()
    await asyncio.sleep(0.5)
    assert "sleeper   | was killed by SIGKILL; restarting in 0.05s" in out.getvalue()
    assert out.getvalue().count("restarted (pid") == 1
    assert log.read_text() == "up\nup\n"
