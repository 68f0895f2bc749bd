"""The titler's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["TITLES"]

TITLES = Counter(
    "tokenbus_titler_titles_total",
    "Titles made, by source (model: the utility model's; fallback: made from the message)",
    ["source"],
)
