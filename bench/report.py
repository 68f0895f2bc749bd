"""BENCHMARKS.md and the plots, from one run's raw results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def _added(rows: list[dict[str, Any]], route: str, level: int, key: str) -> float | None:
    mine = next((r for r in rows if r["route"] == route and r["concurrency"] == level), None)
    base = next((r for r in rows if r["route"] == "direct" and r["concurrency"] == level), None)
    if not mine or not base or mine[key] is None or base[key] is None:
        return None
    return round(mine[key] - base[key], 2)


def _fmt(value: object) -> str:
    return "-" if value is None else str(value)


def _plots(run: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = run["levels"]
    routes = [r for r in ("tokenbus", "litellm") if any(x["route"] == r for x in rows)]
    levels = sorted({r["concurrency"] for r in rows})
    names = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for route in routes:
        for key, style in (("ttft_p50_ms", "-o"), ("ttft_p99_ms", "--x")):
            ys = [_added(rows, route, lv, key) for lv in levels]
            ax.plot(levels, ys, style, label=f"{route} {key[5:8]}")
    ax.set_xscale("log")
    ax.set_xlabel("concurrent streams")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylabel("added TTFT over direct (ms)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "ttft_overhead.png", dpi=110)
    names.append("ttft_overhead.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for route in routes:
        ys = [
            next((r["cpu_s_per_1k_tokens"] for r in rows
                  if r["route"] == route and r["concurrency"] == lv), None)
            for lv in levels
        ]  # fmt: skip
        ax.plot(levels, ys, "-o", label=route)
    ax.set_xscale("log")
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("CPU seconds per 1,000 tokens relayed")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "cpu_per_1k_tokens.png", dpi=110)
    names.append("cpu_per_1k_tokens.png")
    plt.close(fig)
    return names


def write_report(run: dict[str, Any], results_dir: Path, report: Path, json_name: str) -> None:
    rows = run["levels"]
    plots = _plots(run, results_dir)
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench run`); do not edit by hand. Three routes to",
        "one upstream simulator, measured in one run, levels interleaved so that drift of",
        "this shared machine hits all routes alike: **direct** (clients to the simulator),",
        "**tokenbus** (gateway → NATS JetStream → generator → simulator, and back), and",
        "**litellm** (LiteLLM proxy, no database). The load generator runs on the same",
        "machine, so at high concurrency every route competes with it for the two cores.",
        "",
        f"- When: {run['started']}  ·  mode: {run['mode']}  ·  command: `{run['command']}`",
        f"- Machine: {run['machine']}",
        f"- Simulator: TTFT {run['sim']['ttft_ms']} ms, inter-token {run['sim']['itl_ms']} ms, "
        f"{run['sim']['tokens']} tokens per stream",
        f"- Raw results: `bench/results/{json_name}`",
        "",
        "## Latency added over direct, and cost",
        "",
        "| route | streams | ok | in order | added TTFT p50 / p99 (ms) | added gap p50 / p99 (ms)"
        " | CPU s / 1k tokens | front KB / stream | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["route"] == "direct":
            added_ttft = f"({_fmt(r['ttft_p50_ms'])} / {_fmt(r['ttft_p99_ms'])} absolute)"
            added_gap = f"({_fmt(r['gap_p50_ms'])} / {_fmt(r['gap_p99_ms'])} absolute)"
        else:
            added_ttft = (
                f"{_fmt(_added(rows, r['route'], r['concurrency'], 'ttft_p50_ms'))} / "
                f"{_fmt(_added(rows, r['route'], r['concurrency'], 'ttft_p99_ms'))}"
            )
            added_gap = (
                f"{_fmt(_added(rows, r['route'], r['concurrency'], 'gap_p50_ms'))} / "
                f"{_fmt(_added(rows, r['route'], r['concurrency'], 'gap_p99_ms'))}"
            )
        lines.append(
            f"| {r['route']} | {r['concurrency']} | {r['streams_ok']} | {r['in_order']} | "
            f"{added_ttft} | {added_gap} | {_fmt(r['cpu_s_per_1k_tokens'])} | "
            f"{_fmt(r['front_kb_per_stream'])} | {r['errors'] or '-'} |"
        )
    lines += [
        "",
        "CPU counts every process of the route (tokenbus: gateway, generator, nats-server,",
        "titler, usage; litellm: the proxy), not the simulator or the clients.",
        "",
        "## Cancellation: client disconnect to upstream connection closed",
        "",
        "| route | streams | upstream closed | p50 (ms) | p99 (ms) |",
        "|---|---|---|---|---|",
    ]
    for c in run["cancellation"]:
        lines.append(
            f"| {c['route']} | {c['streams']} | {c['upstream_closed']} | "
            f"{_fmt(c['p50_ms'])} | {_fmt(c['p99_ms'])} |"
        )
    lines += ["", "## Plots", ""]
    lines += [f"![{name}](bench/results/{name})" for name in plots]
    lines += ["", run.get("notes", "").strip(), ""]
    report.write_text("\n".join(lines))
