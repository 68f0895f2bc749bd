"""Gateway memory per open stream, with the streams held open rather than in a burst.

A burst's peak RSS mixes open streams with the ones being set up and torn down;
this holds `streams` streams open at once (a slow simulator: 100 ms between
tokens, 400 tokens, so none ends while measured), waits until each has had its
first token and `settle_s` more, and reads the gateway's VmRSS before and during.
`--prompt-kb` sends each request with that much conversation history, as a chat
product does: what a stream keeps of its request shows there. All at once, the
requests' passing copies of that history peak together and the allocator keeps
the peak; `--ramp-s` spreads the starts (as a service's arrivals are), so what is
read is what each open stream holds.

`--baseline TREE` measures another source tree (e.g. `git worktree add /tmp/base
main`) the same way, in pairs run back to back (baseline, then this tree), so a
change is read as a difference on the same machine at about the same load.

Run alone: python -m bench.held [--streams 200] [--prompt-kb 0] [--ramp-s 0] [--pairs 2]
[--baseline TREE] [--tree TREE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.loadgen import StreamResult, _Raw, _sse_data, run_streams
from bench.measure import MODEL
from bench.paths import Route, running_simulator, running_tokenbus
from bench.procstats import sample

__all__ = ["hold_streams", "measure_held"]

WORK = Path(__file__).resolve().parent / ".work"
_ITL_MS = 100.0
_TOKENS = 400


def _body(request_id: str, prompt_kb: int) -> bytes:
    # History as earlier turns, so the request is the shape of a real conversation's.
    history: list[dict[str, str]] = []
    words = "lorem ipsum dolor sit amet " * 40  # ~1 KB
    for n in range(prompt_kb):
        history.append({"role": "user" if n % 2 == 0 else "assistant", "content": words})
    messages = [*history, {"role": "user", "content": f"benchmark req={request_id}"}]
    return orjson.dumps(
        {"model": MODEL, "messages": messages, "max_tokens": _TOKENS, "stream": True}
    )


async def _one(base_url: str, body: bytes, first: asyncio.Event, delay_s: float = 0.0) -> None:
    """One stream, started after `delay_s` and read as it comes; `first` is set at its
    first token."""
    await asyncio.sleep(delay_s)
    reader, writer, status, headers = await _Raw(base_url).open(body)
    try:
        if status != 200:
            raise RuntimeError(f"status {status}")
        result = StreamResult()
        start = last = time.perf_counter()
        async for data in _sse_data(_Raw.body(reader, headers)):
            last = result.take(data, start, last)
            if result.tokens:
                first.set()
            if result.error or result.done:
                raise RuntimeError(f"stream ended while held: {result.error or 'done'}")
    finally:
        writer.transport.abort()


async def hold_streams(
    route: Route, streams: int, prompt_kb: int, settle_s: float, ramp_s: float = 0.0
) -> float:
    """KB of gateway RSS per open stream, `streams` held at once (started over `ramp_s`)."""
    gateway = route.pids()["gateway"]
    before = sample(gateway).rss_kb
    firsts = [asyncio.Event() for _ in range(streams)]
    tag = f"held{time.monotonic_ns()}"
    tasks = [
        asyncio.create_task(
            _one(route.base_url, _body(f"{tag}n{n}", prompt_kb), first, ramp_s * n / streams)
        )
        for n, first in enumerate(firsts)
    ]
    all_first = asyncio.ensure_future(asyncio.gather(*(first.wait() for first in firsts)))
    try:
        # The streams end only by failing: the first of them to end, or every first token.
        either: list[asyncio.Future[Any]] = [all_first, *tasks]
        await asyncio.wait(either, timeout=60 + ramp_s, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                raise RuntimeError(f"a held stream ended: {task.exception()!r}")
        if not all_first.done():
            had = sum(first.is_set() for first in firsts)
            raise RuntimeError(f"only {had} of {streams} streams had a first token")
        await asyncio.sleep(settle_s)
        during = sample(gateway).rss_kb
    finally:
        all_first.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(all_first, *tasks, return_exceptions=True)
    return (during - before) / streams


async def _measure_tree(tree: Path | None, args: argparse.Namespace) -> float:
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(running_simulator(50.0, _ITL_MS, _TOKENS, WORK))
        route = stack.enter_context(running_tokenbus(sim, WORK, pythonpath=tree))
        for _ in range(2):  # warm up: imports, pools and caches every stream will share
            await run_streams(route.base_url, MODEL, 20, 5)
        await asyncio.sleep(2)
        per_stream = await hold_streams(
            route, args.streams, args.prompt_kb, args.settle_s, args.ramp_s
        )
        # The aborted streams' turns wind down before the stack is stopped.
        await asyncio.sleep(1)
        return per_stream


async def measure_held(args: argparse.Namespace) -> dict[str, Any]:
    this: list[float] = []
    baseline: list[float] = []
    for _ in range(args.pairs):
        if args.baseline is not None:
            baseline.append(round(await _measure_tree(args.baseline, args), 1))
        this.append(round(await _measure_tree(args.tree, args), 1))
    out: dict[str, Any] = {
        "streams": args.streams,
        "prompt_kb": args.prompt_kb,
        "ramp_s": args.ramp_s,
        "kb_per_stream": this,
        "kb_per_stream_median": statistics.median(this),
    }
    if baseline:
        out["baseline"] = str(args.baseline)
        out["baseline_kb_per_stream"] = baseline
        out["baseline_kb_per_stream_median"] = statistics.median(baseline)
    with contextlib.suppress(OSError):
        out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.held")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--prompt-kb", type=int, default=0, help="history sent with each request")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--settle-s", type=float, default=2.0)
    parser.add_argument(
        "--ramp-s", type=float, default=0.0, help="start the streams over this many seconds"
    )
    parser.add_argument("--baseline", type=Path, help="a source tree to measure beside this one")
    parser.add_argument("--tree", type=Path, help="the tree to measure (default: this checkout)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure_held(args)), indent=2), file=sys.stdout)


if __name__ == "__main__":
    main()
