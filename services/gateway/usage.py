"""Usage totals read back from the JetStream counters the usage service keeps."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from contracts.subjects import (
    USAGE_MEASURES,
    USAGE_STREAM,
    parse_usage_counter_subject,
    tenant_usage_filter,
)
from services.runtime.bus import Bus

__all__ = ["GROUPINGS", "usage_totals"]

GROUPINGS = ("day", "model", "purpose", "user", "key")


async def usage_totals(
    bus: Bus, tenant_id: str, first_day: str, last_day: str, group_by: tuple[str, ...]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The tenant's rows per group (days as YYYY-MM-DD, inclusive range) and its total."""
    info = await bus.js.stream_info(USAGE_STREAM, subjects_filter=tenant_usage_filter(tenant_id))
    groups: dict[tuple[str, ...], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(USAGE_MEASURES, 0)
    )
    for subject in info.state.subjects or {}:
        key, measure = parse_usage_counter_subject(subject)
        if not first_day <= key.day <= last_day or measure not in USAGE_MEASURES:
            continue
        latest = await bus.js.get_last_msg(USAGE_STREAM, subject, direct=True)
        if latest.data is None:
            continue
        labels = {
            "day": key.day,
            "model": key.model,
            "purpose": key.purpose,
            "user": key.user,
            "key": key.key,
        }
        value = int(orjson.loads(latest.data)["val"])
        groups[tuple(labels[g] for g in group_by)][measure] += value
    rows = [
        {**dict(zip(group_by, key, strict=True)), **_presented(measures)}
        for key, measures in sorted(groups.items())
    ]
    total = dict.fromkeys(USAGE_MEASURES, 0)
    for measures in groups.values():
        for name, value in measures.items():
            total[name] += value
    return rows, _presented(total)


def _presented(measures: dict[str, int]) -> dict[str, Any]:
    shown: dict[str, Any] = {k: v for k, v in measures.items() if k != "cost_micro_usd"}
    shown["cost_usd"] = measures["cost_micro_usd"] / 1_000_000
    return shown
