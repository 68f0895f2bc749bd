"""Two source trees side by side: a change against its baseline, in one run.

One simulator and two `tokenbus up` stacks, one per tree, both up for the whole run;
each round runs a level through both, the order alternating, so the drift of this
shared machine hits both alike, and straight to the simulator (direct) for the
ceiling. Reported per tree: tokens/s, relay CPU (gateway + generator + nats-server)
per 1,000 tokens in all and per process, TTFT and gap percentiles, and whether
every stream came whole and in order; and the ratio of the medians.

Run alone: python -m bench.ab --baseline TREE [--tree TREE] [--streams 200]
[--tokens 40] [--rounds 3] [--batches 1] [--ramp-s 0]
(a tree: e.g. `git worktree add /tmp/base main`)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.loadgen import run_streams
from bench.measure import MODEL, gateway_side, measure_level, per_1k
from bench.paths import Route, running_simulator, running_tokenbus

__all__ = ["compare_trees"]

WORK = Path(__file__).resolve().parent / ".work" / "ab"
_FIGURES = ("tokens_per_s", "cpu_s_per_1k_tokens", "ttft_p50_ms", "ttft_p99_ms", "gap_p99_ms")


async def _round(route: Route, sim: Route, args: argparse.Namespace) -> dict[str, Any]:
    level = await measure_level(
        route, sim, args.streams, args.tokens, batches=args.batches, ramp_s=args.ramp_s
    )
    whole = level["streams_ok"] == level["streams"] and level["in_order"]
    by_process = {
        label: per_1k(p["cpu_s"], level["tokens"])
        for label, p in level["processes"].items()
        if gateway_side(route.name, label)
    }
    return {
        **{k: level[k] for k in _FIGURES},
        "cpu_s_per_1k_tokens_by_process": by_process,
        "whole_and_in_order": whole,
    }


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    medians = {
        k: statistics.median(r[k] for r in rounds if r[k] is not None)
        for k in _FIGURES
        if any(r[k] is not None for r in rounds)
    }
    return {
        "median": medians,
        "rounds": rounds,
        "whole_and_in_order": all(r["whole_and_in_order"] for r in rounds),
    }


async def compare_trees(args: argparse.Namespace) -> dict[str, Any]:
    trees = {"baseline": args.baseline, "this": args.tree}
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in ("direct", *trees)}
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(running_simulator(50.0, 20.0, args.tokens, WORK))
        routes = {
            name: stack.enter_context(running_tokenbus(sim, WORK / name, pythonpath=tree))
            for name, tree in trees.items()
        }
        for route in routes.values():  # imports, pools and caches every stream will share
            for _ in range(2):
                await run_streams(route.base_url, MODEL, 20, args.tokens)
        for n in range(args.rounds):
            order = list(routes) if n % 2 == 0 else list(reversed(routes))
            rounds["direct"].append(await _round(sim, sim, args))
            for name in order:
                rounds[name].append(await _round(routes[name], sim, args))
                await asyncio.sleep(1)  # the level's turns wind down
    out: dict[str, Any] = {
        "streams": args.streams,
        "tokens": args.tokens,
        "batches": args.batches,
        "ramp_s": args.ramp_s,
        "baseline_tree": str(args.baseline),
        **{name: _summary(r) for name, r in rounds.items()},
    }
    base, this = out["baseline"]["median"], out["this"]["median"]
    out["this_over_baseline"] = {
        k: round(this[k] / base[k], 3) for k in this if base.get(k) not in (None, 0)
    }
    direct = out["direct"]["median"]["tokens_per_s"]
    for name in trees:
        out[name]["tokens_per_s_of_direct"] = round(out[name]["median"]["tokens_per_s"] / direct, 3)
    with contextlib.suppress(OSError):
        out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab")
    parser.add_argument("--baseline", type=Path, required=True, help="the tree to compare with")
    parser.add_argument("--tree", type=Path, help="the changed tree (default: this checkout)")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--batches",
        type=int,
        default=1,
        help="levels run one after another per round (--streams 1 --tokens 1 --batches 300: "
        "the CPU of a request, in ms, is the CPU s per 1k tokens)",
    )
    parser.add_argument("--ramp-s", type=float, default=0.0, help="spread the starts over this")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(compare_trees(args)), indent=2), file=sys.stdout)


if __name__ == "__main__":
    main()
