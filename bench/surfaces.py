"""`python -m bench.surfaces`: the relay's CPU per 1,000 tokens on each API surface.

Chat Completions, Anthropic Messages and OpenAI Responses streams of the same
length through one `tokenbus up` on the simulator, at one level, side by side:
each round measures the three in turn (the order rotating by round), so each
round's figures share the machine's state and their ratio to Chat Completions
is taken per round. The JSON goes to bench/results/<time>-surfaces.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.loadgen import Kind
from bench.measure import measure_level
from bench.paths import running_simulator, running_tokenbus

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / ".work"
SURFACES: tuple[Kind, ...] = ("text", "messages", "responses")


async def measure(level: int, tokens: int, rounds: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(running_simulator(50.0, 20.0, tokens, WORK))
        tokenbus = stack.enter_context(running_tokenbus(sim, WORK))
        for kind in SURFACES:  # warm up each surface's code path
            await measure_level(tokenbus, sim, 4, tokens, kind=kind)
        for n in range(rounds):
            for i in range(len(SURFACES)):
                kind = SURFACES[(i + n) % len(SURFACES)]
                row = await measure_level(tokenbus, sim, level, tokens, kind=kind)
                rows.append({**row, "round": n})
    return {"level": level, "tokens": tokens, "rounds": rounds, "rows": rows}


def summary(result: dict[str, Any]) -> list[str]:
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for row in result["rows"]:
        by_round.setdefault(row["round"], {})[row["kind"]] = row
    lines = [
        "| surface | relay CPU s per 1,000 tokens (median) | ÷ chat completions, median (range) "
        "| TTFT p50 ms (median) | streams whole |",
        "|---|---|---|---|---|",
    ]
    for kind in SURFACES:
        rows = [r[kind] for r in by_round.values()]
        cpu = statistics.median(r["cpu_s_per_1k_tokens"] for r in rows)
        ratios = [r[kind]["cpu_s_per_1k_tokens"] / r["text"]["cpu_s_per_1k_tokens"]
                  for r in by_round.values()]  # fmt: skip
        ttft = statistics.median(r["ttft_p50_ms"] for r in rows)
        whole = sum(r["streams_ok"] for r in rows), sum(r["streams"] for r in rows)
        name = {"text": "/v1/chat/completions", "messages": "/v1/messages",
                "responses": "/v1/responses"}[kind]  # fmt: skip
        lines.append(
            f"| `{name}` | {cpu:.3f} | {statistics.median(ratios):.2f} "
            f"({min(ratios):.2f} to {max(ratios):.2f}) | {ttft:.0f} | {whole[0]} of {whole[1]} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.surfaces")
    parser.add_argument("--level", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(measure(args.level, args.tokens, args.rounds))
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-surfaces.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2))
    print("\n".join(summary(result)))
    print(f"wrote bench/results/{name}")


if __name__ == "__main__":
    main()
