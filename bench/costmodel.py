"""The one-stream cost model: fixed CPU per request and CPU per chunk, and idle CPU.

One stream at a time, answers of several lengths, each run `repeats` times; the
relay's CPU (gateway + generator + nats-server, read from /proc) of each stream is
fitted by least squares to `fixed + per_chunk * chunks`. Idle CPU is the whole
stack's (every tokenbus process) over a quiet interval, per second; the fit is made
on each stream's CPU minus the relay's idle rate times the stream's wall time, so
background ticks are not charged to requests (both fits are kept).

`--baseline TREE` measures another source tree (a `git worktree`) the same way, in
pairs run back to back (baseline, then this tree), for a change read as a difference.

Run alone: python -m bench.costmodel [--lengths 1,20,80] [--repeats 8] [--itl-ms 20]
[--baseline TREE] [--tree TREE] [--pairs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.loadgen import run_streams
from bench.measure import MODEL, gateway_side
from bench.paths import Route, running_simulator, running_tokenbus
from bench.procstats import sample

__all__ = ["fit", "idle_cpu", "measure_cost_model"]

WORK = Path(__file__).resolve().parent / ".work"


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    found = {}
    for label, pid in pids.items():
        with contextlib.suppress(OSError):
            found[label] = sample(pid).cpu_s
    return found


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares `y = a + b x` over (x, y) points: (a, b)."""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - b * mx, b


async def idle_cpu(route: Route, seconds: float) -> dict[str, float]:
    """CPU ms per second of each process of the route while nothing is asked of it."""
    pids = route.pids()
    before = _cpu(pids)
    await asyncio.sleep(seconds)
    after = _cpu(pids)
    return {k: round((after[k] - before[k]) * 1000 / seconds, 2) for k in after if k in before}


async def measure_cost_model(
    route: Route, lengths: tuple[int, ...], repeats: int, idle_s: float = 10.0
) -> dict[str, Any]:
    """Fixed CPU per request and per chunk (ms) for one stream at a time through `route`."""
    idle = await idle_cpu(route, idle_s)
    relay_idle_ms_s = sum(v for k, v in idle.items() if gateway_side(route.name, k))
    pids = route.pids()
    raw: list[tuple[float, float]] = []
    net: list[tuple[float, float]] = []
    per_process: dict[str, list[tuple[float, float]]] = {}
    ttfts: list[float] = []
    for n in range(repeats):
        order = lengths if n % 2 == 0 else lengths[::-1]
        for length in order:
            before, t0 = _cpu(pids), time.perf_counter()
            [result] = await run_streams(route.base_url, MODEL, 1, length)
            # The last acks and metering land just after the client's last byte.
            await asyncio.sleep(0.05)
            wall = time.perf_counter() - t0
            after = _cpu(pids)
            if result.error is not None or result.tokens != length:
                raise RuntimeError(f"stream of {length} failed: {result.error}, {result.tokens}")
            if result.ttft_s is not None:
                ttfts.append(result.ttft_s)
            relay = sum(
                after[k] - before[k] for k in after if k in before and gateway_side(route.name, k)
            )
            raw.append((length, relay * 1000))
            net.append((length, relay * 1000 - relay_idle_ms_s * wall))
            for k in after:
                if k in before:
                    per_process.setdefault(k, []).append((length, (after[k] - before[k]) * 1000))
    fixed, per_chunk = fit(net)
    raw_fixed, raw_per_chunk = fit(raw)
    return {
        "route": route.name,
        "lengths": list(lengths),
        "repeats": repeats,
        "idle_ms_per_s": idle,
        "idle_ms_per_s_total": round(sum(idle.values()), 2),
        "relay_idle_ms_per_s": round(relay_idle_ms_s, 2),
        "fixed_ms": round(fixed, 3),
        "per_chunk_ms": round(per_chunk, 4),
        "raw_fixed_ms": round(raw_fixed, 3),
        "raw_per_chunk_ms": round(raw_per_chunk, 4),
        "per_process": {k: _fitted(v) for k, v in per_process.items()},
        "ttft_p50_ms": round(statistics.median(ttfts) * 1000, 2) if ttfts else None,
    }


def _fitted(points: list[tuple[float, float]]) -> dict[str, float]:
    fixed, per_chunk = fit(points)
    return {"fixed_ms": round(fixed, 3), "per_chunk_ms": round(per_chunk, 4)}


async def _measure_tree(tree: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    lengths = tuple(int(x) for x in args.lengths.split(","))
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(running_simulator(50.0, args.itl_ms, max(lengths), WORK))
        route = stack.enter_context(running_tokenbus(sim, WORK, pythonpath=tree))
        await run_streams(route.base_url, MODEL, 4, 20)  # warm up
        await asyncio.sleep(2)
        out = await measure_cost_model(route, lengths, args.repeats, args.idle_s)
        with contextlib.suppress(OSError):
            out["load_average"] = [round(x, 2) for x in __import__("os").getloadavg()]
        return out


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    if args.baseline is None:
        return await _measure_tree(args.tree, args)
    pairs = []
    for _ in range(args.pairs):
        baseline = await _measure_tree(args.baseline, args)
        pairs.append({"baseline": baseline, "this": await _measure_tree(args.tree, args)})
    return {"baseline_tree": str(args.baseline), "pairs": pairs}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.costmodel")
    parser.add_argument("--lengths", default="1,20,80")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--itl-ms", type=float, default=20.0)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--baseline", type=Path, help="a source tree to measure beside this one")
    parser.add_argument("--tree", type=Path, help="the tree to measure (default: this checkout)")
    parser.add_argument("--pairs", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_main(args)), indent=2), file=sys.stdout)


if __name__ == "__main__":
    main()
