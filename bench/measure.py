"""One measurement: a route at one concurrency level, with its processes' CPU and memory."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from typing import Any

import httpx

from bench.loadgen import StreamResult, cancel_streams, run_streams
from bench.paths import Route
from bench.procstats import sample

__all__ = ["measure_cancellation", "measure_level", "percentile"]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def _peak_rss(pid: int, stop: asyncio.Event) -> int:
    peak = 0
    while not stop.is_set():
        with contextlib.suppress(OSError):
            peak = max(peak, sample(pid).rss_kb)
        await asyncio.sleep(0.05)
    return peak


async def measure_level(route: Route, concurrency: int, tokens: int) -> dict[str, Any]:
    pids = route.pids()
    before = {label: sample(pid) for label, pid in pids.items()}
    front = route.front_pid()
    idle_rss = sample(front).rss_kb if front else 0
    stop = asyncio.Event()
    peak_task = asyncio.create_task(_peak_rss(front, stop)) if front else None
    results: list[StreamResult] = await run_streams(route.base_url, "sim", concurrency, tokens)
    stop.set()
    peak = await peak_task if peak_task else 0
    after = {label: sample(pid) for label, pid in pids.items() if label in before}
    cpu = {label: round(after[label].cpu_s - before[label].cpu_s, 3) for label in after}
    ok = [r for r in results if r.error is None]
    relayed = sum(r.tokens for r in results)
    ttfts = [r.ttft_s for r in ok if r.ttft_s is not None]
    gaps = [g for r in ok for g in r.gaps_s]
    errors: dict[str, int] = {}
    for r in results:
        if r.error:
            errors[r.error] = errors.get(r.error, 0) + 1
    return {
        "route": route.name,
        "concurrency": concurrency,
        "streams_ok": len(ok),
        "in_order": all(r.in_order for r in ok),
        "errors": errors,
        "tokens": relayed,
        "ttft_p50_ms": _ms(percentile(ttfts, 50)),
        "ttft_p99_ms": _ms(percentile(ttfts, 99)),
        "gap_p50_ms": _ms(percentile(gaps, 50)),
        "gap_p99_ms": _ms(percentile(gaps, 99)),
        "cpu_s": cpu,
        "cpu_s_per_1k_tokens": round(sum(cpu.values()) / relayed * 1000, 4) if relayed else None,
        "front_rss_kb_idle": idle_rss,
        "front_rss_kb_peak": peak,
        "front_kb_per_stream": round((peak - idle_rss) / concurrency, 1) if front else None,
    }


async def measure_cancellation(
    route: Route, simulator_url: str, count: int, after_tokens: int = 5
) -> dict[str, Any]:
    closed = await cancel_streams(route.base_url, "sim", count, after_tokens, route.name)
    await asyncio.sleep(1.0)
    async with httpx.AsyncClient() as client:
        aborted: dict[str, float] = (await client.get(f"{simulator_url}/_stats")).json()["aborted"]
    latencies = [aborted[k] - t for k, t in closed.items() if k in aborted]
    return {
        "route": route.name,
        "streams": count,
        "upstream_closed": len(latencies),
        "p50_ms": _ms(percentile(latencies, 50)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "mean_ms": _ms(statistics.fmean(latencies)) if latencies else None,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)
