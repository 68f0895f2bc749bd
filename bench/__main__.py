"""`python -m bench run [--quick]`: measure the three routes and write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.measure import measure_cancellation, measure_level
from bench.paths import litellm_available, running_litellm, running_simulator, running_tokenbus
from bench.report import write_report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / ".work"
NOTES = ROOT / "bench" / "NOTES.md"

MODES = {
    "quick": {"levels": (1, 50, 200), "tokens": 20, "itl_ms": 20.0, "cancel": 10},
    "full": {"levels": (1, 50, 200, 500, 1000), "tokens": 40, "itl_ms": 20.0, "cancel": 30},
}


def _machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), "unknown CPU")  # fmt: skip
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_kb // 1024 // 1024} GiB, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


async def run(mode: str) -> dict[str, Any]:
    config = MODES[mode]
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    result: dict[str, Any] = {
        "started": started,
        "mode": mode,
        "command": "python -m bench run" + (" --quick" if mode == "quick" else ""),
        "machine": _machine(),
        "sim": {"ttft_ms": 50.0, "itl_ms": config["itl_ms"], "tokens": config["tokens"]},
        "levels": [],
        "cancellation": [],
    }
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(running_simulator(50.0, config["itl_ms"], config["tokens"]))
        routes = [sim, stack.enter_context(running_tokenbus(sim, WORK))]
        if litellm_available():
            routes.append(stack.enter_context(running_litellm(sim, WORK / "litellm")))
        else:
            print("LiteLLM not installed in bench/.venv-litellm: measuring without it")
        for route in routes:  # warm up connections and code paths
            await measure_level(route, 4, config["tokens"])
        steps = [(lv, r) for lv in config["levels"] for r in routes]
        for level, route in tqdm(steps, desc="levels x routes", unit="run"):
            result["levels"].append(await measure_level(route, level, config["tokens"]))
        for route in tqdm(routes, desc="cancellation", unit="route"):
            result["cancellation"].append(
                await measure_cancellation(route, sim.base_url, config["cancel"])
            )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--quick", action="store_true", help="a run under 3 minutes")
    parser.add_argument("--results", type=Path, help="with report: the run's JSON file")
    args = parser.parse_args()
    if args.command == "report":
        # Rewrite BENCHMARKS.md from a saved run, e.g. after editing bench/NOTES.md.
        saved = args.results or max(RESULTS.glob("*.json"))
        result = json.loads(saved.read_text())
        result["notes"] = NOTES.read_text() if NOTES.exists() else ""
        write_report(result, RESULTS, ROOT / "BENCHMARKS.md", saved.name)
        return
    mode = "quick" if args.quick else "full"
    result = asyncio.run(run(mode))
    result["notes"] = NOTES.read_text() if NOTES.exists() else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{mode}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2))
    write_report(result, RESULTS, ROOT / "BENCHMARKS.md", name)
    print(f"wrote BENCHMARKS.md and bench/results/{name}", file=sys.stderr)


if __name__ == "__main__":
    main()
