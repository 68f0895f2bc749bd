"""Metering a usage event: what is added, priced how, keyed for exactly-once."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts import TurnUsage
from contracts.subjects import UsageKey, parse_usage_counter_subject, usage_counter_subject
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
        self.adds: list[tuple[str, int, str]] = []

    async def add(self, subject: str, amount: int, once_id: str) -> None:
        self.adds.append((subject, amount, once_id))

    def usage(self) -> dict[str, tuple[UsageKey, int, str]]:
        found = {}
        for subject, amount, once in self.adds:
            if ".usage." in subject:
                key, measure = parse_usage_counter_subject(subject)
                found[measure] = (key, amount, once)
        return found


class RecordingReservations:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def release(self, day: str, scope: str, scope_id: str, turn_id: str) -> None:
        self.log.append(f"release {day} {scope} {scope_id} {turn_id}")


def usage(**overrides: object) -> TurnUsage:
    fields: dict[str, object] = {
        "correlation_id": "c",
        "conversation_id": "v",
        "turn_id": "t",
        "seq": 3,
        "event_id": "ev1",
        "occurred_at": datetime(2026, 11, 22, 23, 59, tzinfo=UTC),
        "tenant_id": "acme",
        "user_id": "ada",
        "key_id": "key_1",
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
    key = UsageKey("acme", "2026-11-22", "ada", "key_1", "gpt-4.1-mini", "chat")
    assert counters.usage() == {
        "input_tokens": (key, 1000, "ev1.input_tokens"),
        "output_tokens": (key, 500, "ev1.output_tokens"),
        "cached_input_tokens": (key, 200, "ev1.cached_input_tokens"),
        "cost_micro_usd": (key, 1200, "ev1.cost_micro_usd"),  # 1000*0.40 + 500*1.60 per million
        "turns": (key, 1, "ev1.turns"),
    }


async def test_spend_is_added_for_the_tenant_and_the_key_before_the_reservation_goes() -> None:
    log: list[str] = []
    counters = RecordingCounters()

    async def add(subject: str, amount: int, once_id: str) -> None:
        log.append(f"add {subject} {amount} {once_id}")

    counters.add = add  # type: ignore[method-assign]
    await meter(usage(), CATALOG, counters, RecordingReservations(log))
    prefix = "add tokenbus.v1.spend.2026-11-22."
    spend = [line.removeprefix(prefix) for line in log if line.startswith(prefix)]
    assert spend == [
        "tenant.acme.tokens 1500 ev1.tenant.tokens",
        "tenant.acme.cost_micro_usd 1200 ev1.tenant.cost_micro_usd",
        "key.key_1.tokens 1500 ev1.key.tokens",
        "key.key_1.cost_micro_usd 1200 ev1.key.cost_micro_usd",
    ]
    # Released only after every add: a budget check never sees the turn in neither place.
    assert log[-2:] == [
        "release 2026-11-22 tenant acme t",
        "release 2026-11-22 key key_1 t",
    ]
    assert all(line.startswith("add") for line in log[:-2])


async def test_a_model_missing_from_the_catalog_is_metered_at_no_price() -> None:
    counters = RecordingCounters()
    await meter(usage(model="retired-model", cached_input_tokens=0), CATALOG, counters)
    assert set(counters.usage()) == {"input_tokens", "output_tokens", "turns"}


def test_model_names_with_dots_survive_the_subject() -> None:
    key = UsageKey("acme", "2026-11-22", "ada", "-", "gpt-4.1-mini", "title")
    subject = usage_counter_subject(key, "turns")
    assert subject.count(".") == 9
    assert parse_usage_counter_subject(subject) == (key, "turns")
