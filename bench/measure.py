"""One measurement: a route at one concurrency level, with its processes' CPU and memory."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from typing import Any

import httpx

from bench.loadgen import Client, Kind, StreamResult, cancel_streams, run_streams
from bench.paths import Route, is_front
from bench.procstats import ProcSample, reset_peak, sample, self_cpu_s

__all__ = [
    "gateway_side",
    "idle_rss",
    "measure_cancellation",
    "measure_level",
    "per_1k",
    "percentile",
]

MODEL = "sim"


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def gateway_side(route: str, label: str) -> bool:
    """Whether a process's CPU counts as the route's relay cost (issue 3's definition)."""
    if route == "tokenbus":
        # titler and usage (and the supervisor) are reported, but they are not the relay.
        return label.split("#")[0] in {"gateway", "generator", "nats"}
    return route == "litellm"


def _samples(pids: dict[str, int]) -> dict[str, ProcSample]:
    found = {}
    for label, pid in pids.items():
        with contextlib.suppress(OSError):  # a process may end between listing and reading
            found[label] = sample(pid)
    return found


def idle_rss(route: Route) -> dict[str, int]:
    """RSS in KB of each of the route's processes now, for a baseline."""
    return {label: s.rss_kb for label, s in _samples(route.pids()).items()}


async def measure_level(
    route: Route,
    sim: Route,
    concurrency: int,
    tokens: int,
    client: Client = "raw",
    batches: int = 1,
    kind: Kind = "text",
    ramp_s: float = 0.0,
) -> dict[str, Any]:
    """Run `batches` rounds of `concurrency` streams through `route`, each round started at once.

    `kind` tools sends requests with `tools`, answered by tool-call streams of as many
    chunks: each piece counts as a token, so CPU per 1k tokens is per 1k chunks alike.
    """
    pids = route.pids()
    sim_pid = next(iter(sim.pids().values()))
    for pid in pids.values():
        reset_peak(pid)
    before, sim_before = _samples(pids), sample(sim_pid)
    client_before, wall_start = self_cpu_s(), time.perf_counter()
    results: list[StreamResult] = []
    total = concurrency * batches
    desc = f"{route.name} x{concurrency}" + (f" {kind}" if kind != "text" else "")
    from tqdm import tqdm  # the bench extra: the report and its tests import this module

    with tqdm(total=total, desc=desc, leave=False) as bar:
        for _ in range(batches):  # one after another: a single stream's figure is a sample
            results += await run_streams(
                route.base_url,
                MODEL,
                concurrency,
                tokens,
                client=client,
                kind=kind,
                on_done=bar.update,
                ramp_s=ramp_s,
            )
    wall = time.perf_counter() - wall_start
    client_cpu = self_cpu_s() - client_before
    sim_cpu = sample(sim_pid).cpu_s - sim_before.cpu_s
    after = _samples({label: pid for label, pid in pids.items() if label in before})
    procs = {
        label: {
            "cpu_s": round(after[label].cpu_s - before[label].cpu_s, 3),
            "rss_idle_kb": route.idle_rss_kb.get(label, before[label].rss_kb),
            "rss_peak_kb": after[label].hwm_kb,
        }
        for label in after
    }
    ok = [r for r in results if r.error is None]
    relayed = sum(r.tokens for r in results)
    ttfts = [r.ttft_s for r in ok if r.ttft_s is not None]
    gaps = [g for r in ok for g in r.gaps_s]
    errors: dict[str, int] = {}
    for r in results:
        if r.error:
            errors[r.error] = errors.get(r.error, 0) + 1
    relay_cpu = sum(p["cpu_s"] for label, p in procs.items() if gateway_side(route.name, label))
    all_cpu = sum(p["cpu_s"] for p in procs.values())
    front = [p for label, p in procs.items() if is_front(label)]
    front_growth = max(0, sum(p["rss_peak_kb"] - p["rss_idle_kb"] for p in front))
    return {
        "route": route.name,
        "concurrency": concurrency,
        "kind": kind,
        "ramp_s": ramp_s,
        "tokens_per_s": round(relayed / wall, 1) if wall else None,
        "streams": total,
        "streams_ok": len(ok),
        "in_order": all(r.in_order for r in ok),
        "errors": errors,
        "tokens": relayed,
        "wall_s": round(wall, 3),
        "ttft_p50_ms": _ms(percentile(ttfts, 50)),
        "ttft_p99_ms": _ms(percentile(ttfts, 99)),
        "gap_p50_ms": _ms(percentile(gaps, 50)),
        "gap_p99_ms": _ms(percentile(gaps, 99)),
        "total_p50_ms": _ms(percentile([r.total_s for r in ok], 50)),
        "processes": procs,
        "relay_cpu_s": round(relay_cpu, 3),
        "cpu_s_per_1k_tokens": per_1k(relay_cpu, relayed) if route.name != "direct" else None,
        "all_cpu_s_per_1k_tokens": per_1k(all_cpu, relayed) if route.name != "direct" else None,
        "front_kb_per_stream": round(front_growth / concurrency, 1) if front else None,
        "simulator_cpu_s": round(sim_cpu, 3),
        "simulator_core_share": round(sim_cpu / wall, 3),
        "client": client,
        "client_cpu_s": round(client_cpu, 3),
        "client_core_share": round(client_cpu / wall, 3),
    }


async def _sim_aborted(simulator_url: str) -> dict[str, float]:
    async with httpx.AsyncClient() as http:
        stats: dict[str, Any] = (await http.get(f"{simulator_url}/_stats", timeout=5)).json()
    return dict(stats["aborted"])


async def measure_cancellation(
    route: Route, simulator_url: str, count: int, after_tokens: int = 5, wait_s: float = 5.0
) -> dict[str, Any]:
    """Streams that leave after `after_tokens` tokens: client close to upstream close."""
    # Far longer than any stream of the run: a route that never cancels is seen as such.
    closed, failures = await cancel_streams(
        route.base_url, MODEL, count, after_tokens, route.name, max_tokens=1_000
    )
    deadline = time.monotonic() + wait_s
    aborted = await _sim_aborted(simulator_url)
    while time.monotonic() < deadline and not closed.keys() <= aborted.keys():
        await asyncio.sleep(0.2)
        aborted = await _sim_aborted(simulator_url)
    latencies = [aborted[k] - t for k, t in closed.items() if k in aborted]
    return {
        "route": route.name,
        "streams": count,
        "after_tokens": after_tokens,
        "client_closed": len(closed),
        "upstream_closed": len(latencies),
        "not_cancelled_within_s": wait_s,
        "not_cancelled": len(closed) - len(latencies),
        "failures": failures[:5],
        "p50_ms": _ms(percentile(latencies, 50)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "max_ms": _ms(max(latencies)) if latencies else None,
        "mean_ms": _ms(statistics.fmean(latencies)) if latencies else None,
    }


def per_1k(cpu_s: float, tokens: int) -> float | None:
    return round(cpu_s / tokens * 1000, 4) if tokens else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)
