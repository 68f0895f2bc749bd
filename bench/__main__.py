"""`python -m bench run [--quick]`: measure the three routes and write the report."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from bench.orchestrate import MODES, run
from bench.report import write_report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / ".work"
NOTES = ROOT / "bench" / "NOTES.md"
ROUTES = ("tokenbus", "litellm")


def _stop_on_sigterm() -> None:
    # SIGTERM would end Python without unwinding; as KeyboardInterrupt, every
    # `finally` runs and stops the processes the harness started.
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--quick", action="store_true", help="a run under 3 minutes")
    parser.add_argument(
        "--routes", default=",".join(ROUTES), help="besides direct (default: tokenbus,litellm)"
    )
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--results", type=Path, help="with report: the run's JSON file")
    parser.add_argument(
        "--report", type=Path, default=ROOT / "BENCHMARKS.md", help="where to write the report"
    )
    return parser


def main() -> None:
    """Run the benchmark, or rewrite the report from a saved run."""
    args = _parser().parse_args()
    report = args.report.resolve()
    if args.command == "report":
        # Rewrite the report from a saved run, e.g. after editing bench/NOTES.md.
        # bench.surfaces and bench.semantic write their own results beside the runs':
        # not runs to report.
        side = ("-surfaces", "-semantic")
        runs = [p for p in RESULTS.glob("*.json") if not p.stem.endswith(side)]
        saved = args.results or max(runs)
        result = json.loads(saved.read_text())
        result["notes"] = NOTES.read_text() if NOTES.exists() else ""
        write_report(result, RESULTS, report, saved.name)
        return
    mode = "quick" if args.quick else "full"
    assert mode in MODES
    wanted = {name.strip() for name in args.routes.split(",") if name.strip()}
    _stop_on_sigterm()
    try:
        result = asyncio.run(run(mode, WORK, wanted, args.client))
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started is stopped", file=sys.stderr)
        raise SystemExit(130) from None
    result["command"] = "python -m bench " + " ".join(sys.argv[1:])
    result["notes"] = NOTES.read_text() if NOTES.exists() else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{mode}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2))
    write_report(result, RESULTS, report, name)
    print(f"wrote {report} and bench/results/{name}", file=sys.stderr)


if __name__ == "__main__":
    main()
