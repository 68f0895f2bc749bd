"""Metering: each usage event adds its tokens and cost to the day's totals, exactly once."""

from __future__ import annotations

from contracts import TurnUsage
from services.runtime.catalog import Catalog
from services.usage.ports import UsageCounters

__all__ = ["meter"]


async def meter(event: TurnUsage, catalog: Catalog, counters: UsageCounters) -> None:
    """Add one turn's usage. Priced with the catalog of the model that answered."""
    entry = catalog.get(event.model)
    cost = entry.cost(event.input_tokens, event.output_tokens) if entry else 0.0
    day = event.occurred_at.date().isoformat()
    amounts = {
        "input_tokens": event.input_tokens,
        "output_tokens": event.output_tokens,
        "cached_input_tokens": event.cached_input_tokens,
        "cost_micro_usd": round(cost * 1_000_000),
        "turns": 1,
    }
    for measure, amount in amounts.items():
        if amount:
            # Keyed by the event: a redelivery of this event adds nothing.
            await counters.add(
                day, event.model, event.purpose, measure, amount, f"{event.event_id}.{measure}"
            )
