"""CPU seconds and memory of the processes under test, read from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ProcSample",
    "command",
    "descendants",
    "kill_survivors",
    "reset_peak",
    "sample",
    "self_cpu_s",
    "start_time",
]

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds so far (user + system), current RSS and peak RSS (VmHWM), in KB."""

    cpu_s: float
    rss_kb: int
    hwm_kb: int


def _stat_fields(pid: int) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: split after the last ")".
    return stat[stat.rindex(")") + 2 :].split()


def sample(pid: int) -> ProcSample:
    """One reading of a live process; raises OSError if it is gone."""
    fields = _stat_fields(pid)
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return ProcSample(cpu, rss, hwm)


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS, so the next peak is this level's; False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def self_cpu_s() -> float:
    """CPU seconds of this process (the load generator), threads included."""
    usage = os.times()
    return usage.user + usage.system


def start_time(pid: int) -> int | None:
    """Clock ticks since boot at which the process started: tells a pid reused from its owner."""
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, depth first; vanishing processes are skipped."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in map(int, (task / "children").read_text().split()):
                    found.append(child)
                    found.extend(descendants(child))
    return found


def command(pid: int) -> str:
    """The process's command line, arguments joined by spaces ('' if it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def kill_survivors(known: dict[int, int | None]) -> list[int]:
    """SIGKILL processes from `known` (pid -> start time) still alive as themselves."""
    killed = []
    for pid, started in known.items():
        if started is not None and start_time(pid) == started:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed
