"""The Markdown report and the plots, from one run's raw results."""

from __future__ import annotations

import functools
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.measure import gateway_side

__all__ = ["combine", "paired_ratios", "write_report"]

Row = dict[str, Any]


def combine(rows: list[Row]) -> list[Row]:
    """One row per route and level: the median of each figure over the rounds."""
    groups: dict[tuple[str, int], list[Row]] = {}
    for row in rows:
        groups.setdefault((row["route"], row["concurrency"]), []).append(row)
    combined = []
    for (route, level), group in groups.items():
        row: Row = {"route": route, "concurrency": level, "rounds": len(group)}
        for key, value in group[0].items():
            if key in row or key == "round":
                continue
            values = [g[key] for g in group if g.get(key) is not None]
            if isinstance(value, bool):
                row[key] = all(values)
            elif isinstance(value, int | float) and values:
                row[key] = round(statistics.median(values), 4)
            elif key == "errors":
                row[key] = {e: sum(g[key].get(e, 0) for g in group) for v in values for e in v}
            elif key == "processes":
                row[key] = {
                    label: {k: statistics.median(g[key][label][k] for g in group
                                                 if label in g[key]) for k in stats}
                    for label, stats in value.items()
                }  # fmt: skip
            else:
                row[key] = value
        row["streams_ok"] = min(g["streams_ok"] for g in group)
        # Memory retained from a higher level would count again in a later round's lower
        # one: take the first round, whose levels rise.
        first = min(group, key=lambda g: g.get("round", 0))
        row["front_kb_per_stream"] = first.get("front_kb_per_stream")
        combined.append(row)
    order = {"direct": 0, "tokenbus": 1, "litellm": 2}
    return sorted(combined, key=lambda r: (r["concurrency"], order.get(r["route"], 9)))


def _find(rows: list[Row], route: str, level: int) -> Row | None:
    return next((r for r in rows if r["route"] == route and r["concurrency"] == level), None)


def _added(rows: list[Row], route: str, level: int, key: str) -> float | None:
    mine, base = _find(rows, route, level), _find(rows, "direct", level)
    if not mine or not base or mine.get(key) is None or base.get(key) is None:
        return None
    return round(mine[key] - base[key], 2)


def _f(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)


def _plots(rows: list[Row], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routes = [r for r in ("tokenbus", "litellm") if any(x["route"] == r for x in rows)]
    levels = sorted({r["concurrency"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4))
    for route in routes:
        for key, style in (("ttft_p50_ms", "-o"), ("ttft_p99_ms", "--x")):
            ax.plot(levels, [_added(rows, route, lv, key) for lv in levels], style,
                    label=f"{route} {key[5:8]}")  # fmt: skip
    ax.set(xscale="log", xlabel="concurrent streams", ylabel="added TTFT over direct (ms)")
    ax.set_yscale("symlog", linthresh=10)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "ttft_overhead.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for route in routes:
        ys = [(_find(rows, route, lv) or {}).get("cpu_s_per_1k_tokens") for lv in levels]
        ax.plot(levels, ys, "-o", label=route)
    ax.set(xscale="log", xlabel="concurrent streams", ylabel="relay CPU s per 1,000 tokens")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "cpu_per_1k_tokens.png", dpi=110)
    plt.close(fig)
    return ["ttft_overhead.png", "cpu_per_1k_tokens.png"]


def _header(run: dict[str, Any], json_name: str) -> list[str]:
    m, cfg = run["machine"], run["config"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{run.get('command', 'python -m bench run')}`; do not edit by hand. Three",
        "routes to one upstream simulator, measured in one run, levels interleaved and the",
        "route order rotated every round, so drift of this shared machine hits all alike:",
        "**direct** (clients to the simulator), **tokenbus** (gateway → NATS JetStream →",
        "generator → simulator, and back) and **litellm** (LiteLLM proxy, no database). All",
        "streams of a level start at once. The load generator runs on the same machine, so",
        "at high concurrency every route competes with it for the cores.",
        "",
        f"- When: {run['started']} · mode {run['mode']} · {cfg['rounds']} round(s), "
        f"median shown · took {run.get('duration_s', '?')} s",
        f"- Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
        f"Python {m['python']}, {m['kernel']}, load average at start {m['load_avg_at_start']}",
        f"- Packages: {packages}",
        f"- Simulator: TTFT {cfg['ttft_ms']} ms, inter-token {cfg['itl_ms']} ms, "
        f"{cfg['tokens']} tokens per stream; load client `{run['client']}`",
        f"- Raw results: `bench/results/{json_name}`",
        "",
        "Commands the harness ran (every process in its own group, stopped at the end):",
        "",
        "```",
        *(f"{name}: {cmd}" for name, cmd in run.get("commands", {}).items()),
        "```",
    ]
    if run.get("litellm_config"):
        lines += ["", "LiteLLM config:", "", "```yaml", run["litellm_config"].rstrip(), "```"]
    for route, why in run.get("skipped", {}).items():
        lines += ["", f"**{route} not measured**: {why}"]
    return lines


def _latency_table(rows: list[Row]) -> list[str]:
    lines = [
        "", "## Latency added over direct, and cost", "",
        "| route | concurrent | streams ok | in order | TTFT p50 / p99 | added TTFT p50 / p99 "
        "| added gap p50 / p99 | tokens/s (÷ direct) | relay CPU s / 1k tokens "
        "| front KB / stream | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        route, level = r["route"], r["concurrency"]
        ttft = f"{_f(r['ttft_p50_ms'])} / {_f(r['ttft_p99_ms'])}"
        if route == "direct":
            added_ttft = "(baseline)"
            added_gap = f"({_f(r['gap_p50_ms'])} / {_f(r['gap_p99_ms'])} absolute)"
        else:
            added_ttft = _added_p50_p99(rows, route, level, "ttft")
            added_gap = _added_p50_p99(rows, route, level, "gap")
        lines.append(
            f"| {route} | {level} | {r['streams_ok']}/{r.get('streams', level)} | {r['in_order']} "
            f"| {ttft} | {added_ttft} "
            f"| {added_gap} | {_throughput(rows, r)} | {_f(r['cpu_s_per_1k_tokens'])} "
            f"| {_f(r['front_kb_per_stream'])} | {r['errors'] or '-'} |"
        )
    lines += [
        "",
        "Milliseconds. A gap is the time between two tokens as one client sees them; an added",
        "gap p50 below zero means tokens arrive bunched (several in one read) behind a queue.",
        "Relay CPU is the gateway-side processes only: tokenbus = gateway + generator +",
        "nats-server; litellm = its whole process tree. Front KB per stream: peak RSS (VmHWM,",
        "reset before the level) of the gateway (the LiteLLM tree) minus its RSS after warm-up,",
        "divided by the concurrent streams; from the first round, whose levels rise.",
    ]
    return lines


def _added_p50_p99(rows: list[Row], route: str, level: int, measure: str) -> str:
    """`p50 / p99` of what the route adds over direct at that level, e.g. measure "ttft"."""
    return " / ".join(_f(_added(rows, route, level, f"{measure}_{p}_ms")) for p in ("p50", "p99"))


def _throughput(rows: list[Row], r: Row) -> str:
    """Tokens per second the clients got over the level's wall time, and its share of direct."""
    mine = r.get("tokens_per_s")
    if mine is None:
        return "-"
    base = _find(rows, "direct", r["concurrency"])
    if r["route"] == "direct" or base is None or not base.get("tokens_per_s"):
        return _f(mine)
    return f"{_f(mine)} ({mine / base['tokens_per_s']:.0%})"


def _ramped_table(run: dict[str, Any]) -> list[str]:
    if not run.get("ramped"):
        return []
    rows = combine(run["ramped"])
    ramp = rows[0].get("ramp_s", 0)
    lines = [
        "", "## Ramped arrivals: starts spread over one answer's length", "",
        f"The streams of a level start evenly over {_f(ramp)} s (one answer: first token plus",
        "every token's gap), a steady arrival rate rather than one burst.",
        "",
        "| route | streams | streams ok | in order | TTFT p50 / p99 | added TTFT p50 / p99 "
        "| added gap p50 / p99 | tokens/s | relay CPU s / 1k tokens |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        route, level = r["route"], r["concurrency"]
        if route == "direct":
            added_ttft, added_gap = "(baseline)", "-"
        else:
            added_ttft = _added_p50_p99(rows, route, level, "ttft")
            added_gap = _added_p50_p99(rows, route, level, "gap")
        lines.append(
            f"| {route} | {level} | {r['streams_ok']}/{r.get('streams', level)} | {r['in_order']} "
            f"| {_f(r['ttft_p50_ms'])} / {_f(r['ttft_p99_ms'])} | {added_ttft} | {added_gap} "
            f"| {_f(r.get('tokens_per_s'))} | {_f(r['cpu_s_per_1k_tokens'])} |"
        )
    return lines


def _cost_model_table(run: dict[str, Any]) -> list[str]:
    if not run.get("cost_model"):
        return []
    lines = [
        "", "## One stream's cost model, and idle CPU", "",
        "One stream at a time, answers of several lengths; each stream's relay CPU, less the",
        "relay's idle rate over its wall time, fitted by least squares to fixed + per chunk",
        "x chunks (bench/costmodel.py). Idle: every process of the route over a quiet",
        "interval, /proc ticks of 10 ms (so +-1 ms/s over 10 s).",
        "",
        "| route | lengths x runs | CPU fixed per request (ms) | CPU per chunk (ms) "
        "| of which, per process (fixed / per chunk) | idle CPU, whole stack (ms/s) "
        "| TTFT p50 (ms) |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for c in run["cost_model"]:
        parts = ", ".join(
            f"{label} {_f(v['fixed_ms'])} / {_f(v['per_chunk_ms'])}"
            for label, v in sorted(c["per_process"].items())
            if gateway_side(c["route"], label)
        )
        idle = ", ".join(f"{k} {_f(v)}" for k, v in sorted(c["idle_ms_per_s"].items()) if v)
        lines.append(
            f"| {c['route']} | {'/'.join(map(str, c['lengths']))} x {c['repeats']} "
            f"| {_f(c['fixed_ms'])} | {_f(c['per_chunk_ms'])} | {parts} "
            f"| {_f(c['idle_ms_per_s_total'])} ({idle or 'none'}) | {_f(c['ttft_p50_ms'])} |"
        )
    return lines


def _process_table(rows: list[Row]) -> list[str]:
    lines = [
        "", "## CPU and memory per process", "",
        "| route | streams | process | CPU s | CPU s / 1k tokens | RSS idle → peak (MB) |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        if r["route"] == "direct":
            continue
        for label, p in sorted(r["processes"].items()):
            per_1k = p["cpu_s"] / r["tokens"] * 1000 if r["tokens"] else None
            lines.append(
                f"| {r['route']} | {r['concurrency']} | {label} | {_f(p['cpu_s'])} "
                f"| {_f(per_1k)} | {p['rss_idle_kb'] / 1024:.0f} → {p['rss_peak_kb'] / 1024:.0f} |"
            )
    return lines


def _bottleneck_table(run: dict[str, Any], rows: list[Row]) -> list[str]:
    worst = max((r["simulator_core_share"] for r in rows), default=0.0)
    lines = [
        "", "## Is the simulator or the load generator the bottleneck?", "",
        f"The simulator used at most {worst:.0%} of one core in any level (share of the",
        "level's wall time it spent on CPU); every route drove the same simulator, so it",
        "costs all alike. The load generator's share is shown too: on two cores, when",
        "clients plus route approach 200 %, the machine, not the route, is the limit.", "",
        "| route | streams | wall s | simulator core share | load generator core share |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['route']} | {r['concurrency']} | {_f(r['wall_s'])} "
            f"| {r['simulator_core_share']:.0%} | {r['client_core_share']:.0%} |"
        )
    if run.get("client_check"):
        lines += [
            "", "Load clients compared, straight to the simulator:", "",
            "| client | streams | TTFT p50 / p99 | gap p50 / p99 | client CPU s | errors |",
            "|---|---|---|---|---|---|",
        ]  # fmt: skip
        for c in run["client_check"]:
            lines.append(
                f"| {c['client']} | {c['concurrency']} | {_f(c['ttft_p50_ms'])} / "
                f"{_f(c['ttft_p99_ms'])} | {_f(c['gap_p50_ms'])} / {_f(c['gap_p99_ms'])} "
                f"| {_f(c['client_cpu_s'])} | {c['errors'] or '-'} |"
            )
    return lines


def _cancel_table(run: dict[str, Any]) -> list[str]:
    lines = [
        "", "## Cancellation: client disconnect to upstream connection closed", "",
        "Clients read a few tokens, then drop the TCP connection; the simulator records when",
        "it sees its own request's connection close. One stream at a time.", "",
        "| route | streams | after tokens | upstream closed | not cancelled | p50 (ms) "
        "| p99 (ms) | max (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for c in run["cancellation"]:
        lines.append(
            f"| {c['route']} | {c['streams']} | {c['after_tokens']} | {c['upstream_closed']} "
            f"| {c['not_cancelled']} | {_f(c['p50_ms'])} | {_f(c['p99_ms'])} "
            f"| {_f(c['max_ms'])} |"
        )
    return lines


def _per_1k(row: Row, label: str | None = None) -> float | None:
    """The row's relay CPU s per 1k tokens, or one process's when `label` is given."""
    if label is None:
        value: float | None = row.get("cpu_s_per_1k_tokens")
        return value
    process = row["processes"].get(label)
    return float(process["cpu_s"]) / row["tokens"] * 1000 if process and row["tokens"] else None


def _harness_per_1k(row: Row) -> float | None:
    # What the simulator and the load client spend per 1k chunks: the same for every route.
    cpu = row["simulator_cpu_s"] + row["client_cpu_s"]
    return cpu / row["tokens"] * 1000 if row["tokens"] else None


def paired_ratios(
    rows: list[Row], route: str, figure: Callable[[Row], float | None]
) -> list[float]:
    """Per round, `figure` of the route's tool-call run over that of its text run."""
    rounds: dict[int, dict[str, float]] = {}
    for row in rows:
        value = figure(row) if row["route"] == route else None
        if value is not None:
            rounds.setdefault(row.get("round", 0), {})[row["kind"]] = value
    return [
        pair["tools"] / pair["text"]
        for _, pair in sorted(rounds.items())
        if pair.get("text") and "tools" in pair
    ]


def _ratio(ratios: list[float]) -> str:
    if not ratios:
        return "-"
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}"
    return f"**{statistics.median(ratios):.2f}** ({min(ratios):.2f} to {max(ratios):.2f})"


def _tools_table(run: dict[str, Any]) -> list[str]:
    raw = run.get("tool_calls") or []
    if not raw:
        return []
    cfg = run["config"]
    kinds = {kind: combine([r for r in raw if r["kind"] == kind]) for kind in ("text", "tools")}
    level = cfg.get("tools_level")
    lines = [
        "", f"## Tool-call streams against text streams, {level} concurrent", "",
        f"Each stream is {cfg['tokens']} chunks either way: text tokens, or pieces of two",
        "interleaved tool calls (id, type and name on a call's first piece, then its",
        "arguments in pieces; finish_reason tool_calls) answering a request with one",
        f"function tool. {cfg.get('tools_rounds')} rounds of a text run and a tool-call run "
        f"per route, {cfg.get('tools_batches')} burst(s)",
        "of streams each, side by side, which goes first alternating by round. Figures are",
        "medians; a ratio is the median (and range) over the rounds of each round's",
        "tool-call figure over its text figure. Relay CPU as above, per 1,000 chunks the",
        "clients received; it includes each request's own work (a tool request's tools",
        "checked and carried on the bus) spread over its chunks.", "",
        "| route | streams ok, text / tools | in order | TTFT p50, text / tools (ms) "
        "| relay CPU s / 1k chunks, text | tool calls | tool calls ÷ text "
        "| simulator + client CPU s / 1k chunks, text / tools |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    text_rows, tool_rows = kinds["text"], kinds["tools"]
    for text in text_rows:
        tools = next((t for t in tool_rows if t["route"] == text["route"]), None)
        if tools is None:
            continue
        route = text["route"]
        ratio = _ratio(paired_ratios(raw, route, _per_1k)) if route != "direct" else "-"
        lines.append(
            f"| {route} | {text['streams_ok']} / {tools['streams_ok']} of {text['streams']} "
            f"| {text['in_order'] and tools['in_order']} "
            f"| {_f(text['ttft_p50_ms'])} / {_f(tools['ttft_p50_ms'])} "
            f"| {_f(_per_1k(text))} | {_f(_per_1k(tools))} | {ratio} "
            f"| {_f(_harness_per_1k(text))} / {_f(_harness_per_1k(tools))} |"
        )
        errors = {**text["errors"], **{f"tools: {e}": n for e, n in tools["errors"].items()}}
        if errors:
            lines.append(f"| {route} errors | {errors} | | | | | | |")
    for text in text_rows:
        tools = next((t for t in tool_rows if t["route"] == text["route"]), None)
        if text["route"] == "direct" or tools is None:
            continue
        route = text["route"]
        lines += [
            "", f"Relay processes ({route}):", "",
            "| process | CPU s / 1k chunks, text | tool calls | tool calls ÷ text |",
            "|---|---|---|---|",
        ]  # fmt: skip
        for label in sorted(text["processes"]):
            if label not in tools["processes"] or not gateway_side(route, label):
                continue
            ratios = paired_ratios(raw, route, functools.partial(_per_1k, label=label))
            lines.append(
                f"| {label} | {_f(_per_1k(text, label))} | {_f(_per_1k(tools, label))} "
                f"| {_ratio(ratios)} |"
            )
    return lines


def write_report(run: dict[str, Any], results_dir: Path, report: Path, json_name: str) -> None:
    """Write the report to `report` and the plots next to the raw results."""
    rows = combine(run["levels"])
    plots = _plots(rows, results_dir)
    link = Path(os.path.relpath(results_dir, report.parent))
    lines = _header(run, json_name) + _latency_table(rows) + _ramped_table(run)
    lines += _cost_model_table(run) + _process_table(rows)
    lines += _bottleneck_table(run, rows) + _cancel_table(run) + _tools_table(run)
    lines += ["", "## Plots", "", *(f"![{name}]({link / name})" for name in plots)]
    if run.get("notes", "").strip():
        lines += ["", "## Notes (bench/NOTES.md, by hand: may describe an earlier run)", ""]
        lines += [run["notes"].strip()]
    report.write_text("\n".join(lines) + "\n")
