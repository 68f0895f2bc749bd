"""Metering: each usage event adds its tokens and cost to the day's totals, exactly once."""

from __future__ import annotations

from contracts import TurnUsage
from contracts.subjects import (
    SpendScope,
    UsageKey,
    spend_counter_subject,
    usage_counter_subject,
)
from services.runtime.catalog import Catalog
from services.usage.ports import Reservations, UsageCounters

__all__ = ["meter"]

NO_KEY = "-"


async def meter(
    event: TurnUsage,
    catalog: Catalog,
    counters: UsageCounters,
    reservations: Reservations | None = None,
) -> None:
    """Add one turn's usage, then release its budget reservation.

    Priced with the catalog of the model that answered. Every add is keyed by the
    event, so a redelivery adds nothing; the release comes last, so a budget check
    never sees the turn neither reserved nor spent.
    """
    entry = catalog.get(event.model)
    cost = entry.cost(event.input_tokens, event.output_tokens) if entry else 0.0
    micro_usd = round(cost * 1_000_000)
    day = event.occurred_at.date().isoformat()
    key = UsageKey(
        event.tenant_id, day, event.user_id, event.key_id or NO_KEY, event.model, event.purpose
    )
    amounts = {
        "input_tokens": event.input_tokens,
        "output_tokens": event.output_tokens,
        "cached_input_tokens": event.cached_input_tokens,
        "cost_micro_usd": micro_usd,
        "turns": 1,
    }
    for measure, amount in amounts.items():
        if amount:
            await counters.add(
                usage_counter_subject(key, measure), amount, f"{event.event_id}.{measure}"
            )
    scopes: list[tuple[SpendScope, str]] = [("tenant", event.tenant_id)]
    if event.key_id is not None:
        scopes.append(("key", event.key_id))
    spend = {"tokens": event.input_tokens + event.output_tokens, "cost_micro_usd": micro_usd}
    for scope, scope_id in scopes:
        for measure, amount in spend.items():
            if amount:
                await counters.add(
                    spend_counter_subject(day, scope, scope_id, measure),
                    amount,
                    f"{event.event_id}.{scope}.{measure}",
                )
    if reservations is not None:
        for scope, scope_id in scopes:
            await reservations.release(day, scope, scope_id, event.turn_id)
