"""Where usage totals are kept."""

from __future__ import annotations

from typing import Protocol

__all__ = ["UsageCounters"]


class UsageCounters(Protocol):
    async def add(
        self, day: str, model: str, purpose: str, measure: str, amount: int, once_id: str
    ) -> None:
        """Add `amount` to one total; the same `once_id` adds only once."""
        ...
