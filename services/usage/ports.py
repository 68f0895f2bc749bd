"""Where usage totals are kept, and the budget reservations usage settles."""

from __future__ import annotations

from typing import Protocol

from contracts.subjects import SpendScope

__all__ = ["Reservations", "UsageCounters"]


class UsageCounters(Protocol):
    async def add(self, subject: str, amount: int, once_id: str) -> None:
        """Add `amount` to the total kept on `subject`; the same `once_id` adds only once."""
        ...


class Reservations(Protocol):
    async def release(self, day: str, scope: SpendScope, scope_id: str, turn_id: str) -> None:
        """The turn's actual usage is counted: its budget reservation can go."""
        ...
