"""Usage totals on real JetStream counters: exactly once, read back grouped."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts import TurnUsage, new_id
from services.gateway.usage import usage_totals
from services.runtime.bus import Bus
from services.runtime.catalog import parse_catalog
from services.usage.counters import NatsUsageCounters
from services.usage.service import meter


def usage(model: str, output: int, purpose: str = "chat") -> TurnUsage:
    return TurnUsage(
        correlation_id="c",
        conversation_id="v",
        turn_id=new_id(),
        seq=2,
        occurred_at=datetime(2026, 11, 22, 12, tzinfo=UTC),
        model=model,
        provider_model=model,
        input_tokens=10,
        output_tokens=output,
        purpose=purpose,  # type: ignore[arg-type]
    )


async def test_a_redelivered_usage_event_is_counted_once(bus: Bus) -> None:
    model = new_id("m")
    catalog = parse_catalog(
        f'[models.{model}]\nprovider = "openai"\nupstream_model = "x"\n'
        "price_input_per_mtok = 1.0\nprice_output_per_mtok = 2.0\n"
    )
    counters = NatsUsageCounters(bus.js)
    first = usage(model, 5)
    await meter(first, catalog, counters)
    await meter(first, catalog, counters)  # the consumer died before its ack: redelivered
    await meter(usage(model, 7), catalog, counters)
    await meter(usage(model, 1, purpose="title"), catalog, counters)

    rows, _ = await usage_totals(bus, "default", "2026-11-22", "2026-11-22", ("model", "purpose"))
    mine = {row["purpose"]: row for row in rows if row["model"] == model}
    assert mine["chat"]["turns"] == 2
    assert mine["chat"]["input_tokens"] == 20
    assert mine["chat"]["output_tokens"] == 12
    assert mine["chat"]["cost_usd"] == (20 * 1.0 + 12 * 2.0) / 1_000_000
    assert mine["title"]["output_tokens"] == 1

    outside, _ = await usage_totals(bus, "default", "2026-11-23", "2026-11-30", ("model",))
    assert not [row for row in outside if row["model"] == model]
