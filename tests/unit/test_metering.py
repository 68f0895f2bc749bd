"""Metering a usage event: what is added, priced how, keyed for exactly-once."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts import TurnUsage
from contracts.subjects import parse_usage_counter_subject, usage_counter_subject
from services.runtime.catalog import parse_catalog
from services.usage.service import meter

CATALOG = parse_catalog(
    """
[models."gpt-4.1-mini"]
provider = "openai"
upstream_model = "gpt-4.1-mini"
price_input_per_mtok = 0.40
price_output_per_mtok = 1.60
"""
)


class RecordingCounters:
    def __init__(self) -> None:
        self.adds: list[tuple[str, str, str, str, int, str]] = []

    async def add(
        self, day: str, model: str, purpose: str, measure: str, amount: int, once_id: str
    ) -> None:
        self.adds.append((day, model, purpose, measure, amount, once_id))


def usage(**overrides: object) -> TurnUsage:
    fields: dict[str, object] = {
        "correlation_id": "c",
        "conversation_id": "v",
        "turn_id": "t",
        "seq": 3,
        "event_id": "ev1",
        "occurred_at": datetime(2026, 11, 22, 23, 59, tzinfo=UTC),
        "model": "gpt-4.1-mini",
        "provider_model": "gpt-4.1-mini-2025",
        "input_tokens": 1000,
        "output_tokens": 500,
        "cached_input_tokens": 200,
    }
    return TurnUsage(**{**fields, **overrides})


async def test_adds_tokens_cost_and_a_turn_keyed_by_the_event() -> None:
    counters = RecordingCounters()
    await meter(usage(), CATALOG, counters)
    by_measure = {measure: (amount, once) for _, _, _, measure, amount, once in counters.adds}
    assert by_measure == {
        "input_tokens": (1000, "ev1.input_tokens"),
        "output_tokens": (500, "ev1.output_tokens"),
        "cached_input_tokens": (200, "ev1.cached_input_tokens"),
        "cost_micro_usd": (1200, "ev1.cost_micro_usd"),  # 1000*0.40 + 500*1.60 per million
        "turns": (1, "ev1.turns"),
    }
    assert {(day, model, purpose) for day, model, purpose, *_ in counters.adds} == {
        ("2026-11-22", "gpt-4.1-mini", "chat")
    }


async def test_a_model_missing_from_the_catalog_is_metered_at_no_price() -> None:
    counters = RecordingCounters()
    await meter(usage(model="retired-model", cached_input_tokens=0), CATALOG, counters)
    assert {measure for *_, measure, _, _ in counters.adds} == {
        "input_tokens",
        "output_tokens",
        "turns",
    }


def test_model_names_with_dots_survive_the_subject() -> None:
    subject = usage_counter_subject("2026-11-22", "gpt-4.1-mini", "title", "turns")
    assert subject.count(".") == 6
    assert parse_usage_counter_subject(subject) == ("2026-11-22", "gpt-4.1-mini", "title", "turns")
