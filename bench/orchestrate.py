"""A whole run: start the routes, interleave the levels, measure the scenarios, stop it all."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench.costmodel import measure_cost_model
from bench.loadgen import Client, Kind
from bench.machine import describe
from bench.measure import idle_rss, measure_cancellation, measure_level
from bench.paths import (
    LITELLM_VENV,
    Route,
    ensure_litellm,
    litellm_config,
    running_litellm,
    running_simulator,
    running_tokenbus,
)

__all__ = ["MODES", "TOOL_ROUTES", "Mode", "run"]

# The routes whose tool-call streams are measured: tokenbus, and direct as the baseline
# (what the simulator and the load client spend on each kind of stream).
TOOL_ROUTES = ("direct", "tokenbus")


@dataclass(frozen=True)
class Mode:
    """How much to measure: levels, stream length, repetitions, cancellation and tool calls."""

    levels: tuple[int, ...]
    tokens: int
    rounds: int
    cancel: int
    client_check_level: int
    ttft_ms: float = 50.0
    itl_ms: float = 20.0
    cancel_after_tokens: int = 5
    # At one stream, one sample says little: run that many single streams in a row.
    single_repeats: int = 10
    # Tool-call streams against text streams of as many chunks, at one level: that many
    # rounds of one text and one tool-call measurement each, side by side, per route.
    tools_level: int = 50
    tools_rounds: int = 3
    tools_batches: int = 2
    # Ramped arrival: that many streams whose starts spread over one answer's length.
    ramp_levels: tuple[int, ...] = (200,)
    # The one-stream cost model (bench.costmodel): answer lengths, runs of each.
    cost_lengths: tuple[int, ...] = (1, 20, 80)
    cost_repeats: int = 5
    idle_s: float = 10.0


MODES = {
    # Under 3 minutes including LiteLLM's ~30 s start-up.
    "quick": Mode(levels=(1, 50, 200), tokens=20, rounds=1, cancel=10, client_check_level=200),
    # Three interleaved rounds; the report shows the median round per level.
    "full": Mode(
        levels=(1, 50, 200, 500, 1000),
        tokens=40,
        rounds=3,
        cancel=30,
        client_check_level=1000,
        single_repeats=20,
        tools_level=200,
        tools_rounds=5,
        tools_batches=1,
        ramp_levels=(200, 500),
        cost_repeats=8,
    ),
}


def _shell(argv: tuple[str, ...]) -> str:
    # Paths inside the repository are shown relative to it, as one would type them.
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return " ".join(part.replace(root, "") for part in argv)


async def _client_check(sim: Route, mode: Mode) -> list[dict[str, Any]]:
    # The load generator shares the cores with the routes: show what each client costs.
    rows = []
    for client in ("raw", "httpx"):
        rows.append(await measure_level(sim, sim, mode.client_check_level, mode.tokens, client))
    return rows


async def _tool_calls(routes: list[Route], sim: Route, mode: Mode, client: Client) -> list[Any]:
    # Text and tool-call streams alternate, which goes first alternating by round, so
    # each round's pair shares the machine's state and the report can take their ratio.
    rows = []
    measured = [route for route in routes if route.name in TOOL_ROUTES]
    kinds: tuple[Kind, Kind] = ("text", "tools")
    steps = [
        (n, route, kind)
        for n in range(mode.tools_rounds)
        for route in measured
        for kind in (kinds if n % 2 == 0 else kinds[::-1])
    ]
    for n, route, kind in tqdm(steps, desc="tool calls vs text", unit="run"):
        row = await measure_level(
            route, sim, mode.tools_level, mode.tokens, client, mode.tools_batches, kind
        )
        rows.append({**row, "round": n})
    return rows


async def run(
    mode_name: str, work: Path, routes_wanted: set[str], client: Client
) -> dict[str, Any]:
    """Measure every wanted route at every level; processes are stopped however this ends."""
    mode = MODES[mode_name]
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "mode": mode_name,
        "config": asdict(mode),
        "client": client,
        "levels": [],
        "cancellation": [],
        "tool_calls": [],
        "ramped": [],
        "cost_model": [],
        "skipped": {},
        "commands": {},
    }
    use_litellm = "litellm" in routes_wanted and ensure_litellm(work / "litellm-install.log")
    if "litellm" in routes_wanted and not use_litellm:
        result["skipped"]["litellm"] = "could not install LiteLLM, see bench/.work/"
    result["machine"] = describe(LITELLM_VENV / "bin" / "python" if use_litellm else None)
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(running_simulator(mode.ttft_ms, mode.itl_ms, mode.tokens, work))
        routes = [sim]
        if "tokenbus" in routes_wanted:
            try:
                routes.append(stack.enter_context(running_tokenbus(sim, work)))
            except RuntimeError as exc:  # measured without it; the report says why
                result["skipped"]["tokenbus"] = f"{exc} (log: bench/.work/tokenbus.log)"
                print(f"bench: tokenbus skipped: {exc}", file=sys.stderr)
        if use_litellm:
            routes.append(stack.enter_context(running_litellm(sim, work / "litellm")))
            result["litellm_config"] = litellm_config(sim)
        result["commands"] = {route.name: _shell(route.argv) for route in routes}
        result["startup_s"] = round(time.monotonic() - began, 1)
        for route in routes:  # warm up connections and code paths
            await measure_level(route, sim, 4, mode.tokens, client)
            if route.name in TOOL_ROUTES:
                await measure_level(route, sim, 4, mode.tokens, client, kind="tools")
            route.idle_rss_kb = idle_rss(route)
        result["client_check"] = await _client_check(sim, mode)
        # Interleaved, and the route order rotates every round, so that drift of this
        # shared machine and any order effect hit every route alike.
        steps = [
            (n, level, routes[(i + n) % len(routes)])
            for n in range(mode.rounds)
            for level in mode.levels
            for i in range(len(routes))
        ]
        for n, level, route in tqdm(steps, desc="levels x routes", unit="run"):
            repeats = mode.single_repeats if level == 1 else 1
            row = await measure_level(route, sim, level, mode.tokens, client, repeats)
            result["levels"].append({**row, "round": n})
        # One answer's length: the starts of a ramped level spread over it.
        answer_s = (mode.ttft_ms + mode.tokens * mode.itl_ms) / 1000
        ramp_steps = [
            (n, level, routes[(i + n) % len(routes)])
            for n in range(mode.rounds)
            for level in mode.ramp_levels
            for i in range(len(routes))
        ]
        for n, level, route in tqdm(ramp_steps, desc="ramped arrivals", unit="run"):
            row = await measure_level(route, sim, level, mode.tokens, client, ramp_s=answer_s)
            result["ramped"].append({**row, "round": n})
        for route in tqdm([r for r in routes if r.name != "direct"], desc="cost model"):
            result["cost_model"].append(
                await measure_cost_model(route, mode.cost_lengths, mode.cost_repeats, mode.idle_s)
            )
        for route in tqdm(routes, desc="cancellation", unit="route"):
            result["cancellation"].append(
                await measure_cancellation(
                    route, sim.base_url, mode.cancel, mode.cancel_after_tokens
                )
            )
        result["tool_calls"] = await _tool_calls(routes, sim, mode, client)
    result["duration_s"] = round(time.monotonic() - began, 1)
    return result
