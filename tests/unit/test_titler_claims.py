"""Exactly one title per conversation: the claim's steps, with fakes at the store and bus seams."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from contracts import ConversationTitled, TitleRequest, TurnUsage
from contracts.subjects import title_turn_id
from services.titler.claims import (
    Claim,
    Finished,
    LeaveToOwner,
    Publish,
    StoredClaim,
    TitleClaim,
    next_step,
)
from services.titler.ports import Completion, Prompt
from services.titler.service import Titler, title_event_id, usage_event_id

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
STALE = timedelta(seconds=60)

REQUEST = TitleRequest(
    correlation_id="corr",
    tenant_id="acme",
    user_id="ada",
    gateway_id="gw1",
    conversation_id="conv1",
    turn_id="turn1",
    user_message="How do I reverse a list in Python?",
    assistant_message="Use slicing.",
)


class MemoryClaims:
    """Compare-and-set on a revision, as the KV bucket does."""

    def __init__(self) -> None:
        self.entries: dict[str, StoredClaim] = {}
        self.revision = 0

    async def read(self, conversation_id: str) -> StoredClaim | None:
        return self.entries.get(conversation_id)

    def _put(self, key: str, claim: TitleClaim) -> int:
        self.revision += 1
        self.entries[key] = StoredClaim(claim, self.revision)
        return self.revision

    async def create(self, conversation_id: str, claim: TitleClaim) -> int | None:
        if conversation_id in self.entries:
            return None
        return self._put(conversation_id, claim)

    async def replace(self, conversation_id: str, claim: TitleClaim, revision: int) -> int | None:
        current = self.entries.get(conversation_id)
        if current is None or current.revision != revision:
            return None
        return self._put(conversation_id, claim)


class MemoryBus:
    """Keeps what was published; drops a second message with the same id, as the server does."""

    def __init__(self) -> None:
        self.titles: list[ConversationTitled] = []
        self.usage: list[TurnUsage] = []
        self.fail_next_title = False
        self.fail_next_usage = False

    async def publish_title(self, gateway_id: str, event: ConversationTitled) -> None:
        if self.fail_next_title:
            self.fail_next_title = False
            raise ConnectionError("bus down")
        if all(e.event_id != event.event_id for e in self.titles):
            self.titles.append(event)

    async def publish_usage(self, gateway_id: str, event: TurnUsage) -> None:
        if self.fail_next_usage:
            self.fail_next_usage = False
            raise ConnectionError("bus down")
        if all(e.event_id != event.event_id for e in self.usage):
            self.usage.append(event)


class SlowModel:
    name = "smollm2-135m-utility"
    provider_model = "smollm2-135m"

    def __init__(self, answer: str = "Reversing lists in Python", delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.calls = 0

    async def complete(self, prompt: Prompt) -> Completion:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return Completion(text=self.answer, input_tokens=120, output_tokens=6)


def titler(claims: MemoryClaims, bus: MemoryBus, model: SlowModel) -> Titler:
    return Titler(claims=claims, publisher=bus, model=model, stale_after=STALE, clock=lambda: NOW)


def state_of(claims: MemoryClaims) -> str:
    return claims.entries["conv1"].claim.state


def pending(owner: int, attempt: int = 1, at: datetime = NOW) -> TitleClaim:
    return TitleClaim(state="pending", attempt=attempt, owner_sequence=owner, claimed_at=at)


def titled_event() -> ConversationTitled:
    return ConversationTitled(
        correlation_id="c", tenant_id="t", conversation_id="v", turn_id="u",
        title="Stored", source="model",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("stored", "step"),
    [
        (None, Claim(attempt=1, revision=None)),
        (StoredClaim(pending(owner=7), 3), LeaveToOwner()),
        (StoredClaim(pending(owner=9), 3), Claim(attempt=2, revision=3)),
        (StoredClaim(pending(owner=7, at=NOW - STALE), 3), Claim(attempt=2, revision=3)),
        (
            StoredClaim(pending(owner=7, attempt=2).model_copy(update={"state": "released"}), 4),
            Claim(attempt=3, revision=4),
        ),
        (StoredClaim(pending(7).model_copy(update={"state": "published"}), 5), Finished()),
    ],
    ids=["none", "live-owner", "own-redelivery", "stale", "released", "published"],
)
def test_the_next_step_follows_from_the_stored_claim(
    stored: StoredClaim | None, step: object
) -> None:
    assert next_step(stored, 9, NOW, STALE) == step


def test_a_titled_claim_is_published_from_its_stored_event() -> None:
    claim = pending(7).model_copy(update={"state": "titled", "event": titled_event()})
    assert next_step(StoredClaim(claim, 5), 9, NOW, STALE) == Publish(claim, 5)


async def test_names_a_conversation_once_with_metered_usage_and_records_it_published() -> None:
    claims, bus, model = MemoryClaims(), MemoryBus(), SlowModel()
    await titler(claims, bus, model).handle(REQUEST, message_sequence=9)

    [event] = bus.titles
    assert event.event_id == title_event_id("conv1")
    assert (event.title, event.source, event.model) == (
        "Reversing lists in Python", "model", "smollm2-135m-utility",
    )  # fmt: skip
    assert (event.tenant_id, event.conversation_id, event.turn_id) == ("acme", "conv1", "turn1")
    [usage] = bus.usage
    assert usage.purpose == "title"
    assert usage.turn_id == title_turn_id("turn1")
    assert (usage.seq, usage.attempt) == (1, 1)
    assert usage.event_id == usage_event_id("turn1", 1, 1)
    assert (usage.tenant_id, usage.user_id) == ("acme", "ada")
    assert (usage.model, usage.provider_model) == ("smollm2-135m-utility", "smollm2-135m")
    assert (usage.input_tokens, usage.output_tokens) == (120, 6)
    stored = claims.entries["conv1"].claim
    assert stored.state == "published"
    assert stored.event == event


async def test_a_redelivered_or_duplicate_request_publishes_nothing_new() -> None:
    claims, bus, model = MemoryClaims(), MemoryBus(), SlowModel()
    service = titler(claims, bus, model)
    await service.handle(REQUEST, message_sequence=9)
    await service.handle(REQUEST, message_sequence=9)  # redelivered: ack was lost
    await service.handle(REQUEST, message_sequence=10)  # published twice by the gateway
    assert model.calls == 1
    assert len(bus.titles) == 1
    assert len(bus.usage) == 1


async def test_concurrent_copies_on_two_replicas_name_the_conversation_once() -> None:
    claims, bus = MemoryClaims(), MemoryBus()
    first, second = SlowModel(delay=0.05), SlowModel(delay=0.05)
    await asyncio.gather(
        titler(claims, bus, first).handle(REQUEST, message_sequence=9),
        titler(claims, bus, second).handle(REQUEST, message_sequence=10),
    )
    assert first.calls + second.calls == 1
    assert len(bus.titles) == 1
    assert len(bus.usage) == 1


async def test_a_crash_after_choosing_republishes_the_stored_title_without_asking_again() -> None:
    claims, bus, model = MemoryClaims(), MemoryBus(), SlowModel()
    bus.fail_next_title = True
    with pytest.raises(ConnectionError):
        await titler(claims, bus, model).handle(REQUEST, message_sequence=9)
    assert state_of(claims) == "titled"

    other = SlowModel(answer="Something else")
    await titler(claims, bus, other).handle(REQUEST, message_sequence=9)
    assert other.calls == 0
    assert [e.title for e in bus.titles] == ["Reversing lists in Python"]
    assert len(bus.usage) == 1
    assert state_of(claims) == "published"


async def test_a_failure_while_naming_releases_the_claim_for_the_next_attempt() -> None:
    claims, bus, model = MemoryClaims(), MemoryBus(), SlowModel()
    bus.fail_next_usage = True
    with pytest.raises(ConnectionError):
        await titler(claims, bus, model).handle(REQUEST, message_sequence=9)
    assert state_of(claims) == "released"

    await titler(claims, bus, model).handle(REQUEST, message_sequence=9)
    [usage] = bus.usage
    assert (usage.attempt, usage.seq) == (2, 1)
    assert usage.event_id == usage_event_id("turn1", 2, 1)
    assert len(bus.titles) == 1


async def test_a_claim_abandoned_by_a_dead_replica_is_taken_over_when_stale() -> None:
    claims, bus, model = MemoryClaims(), MemoryBus(), SlowModel()
    await claims.create("conv1", pending(owner=3, at=NOW - STALE - timedelta(seconds=1)))
    await titler(claims, bus, model).handle(REQUEST, message_sequence=9)
    assert model.calls == 1
    assert bus.usage[0].attempt == 2
    assert len(bus.titles) == 1


async def test_a_slow_owner_whose_claim_was_taken_over_publishes_nothing() -> None:
    claims, bus = MemoryClaims(), MemoryBus()

    class TakenOverMeanwhile(SlowModel):
        async def complete(self, prompt: Prompt) -> Completion:
            stored = claims.entries["conv1"]
            await claims.replace("conv1", pending(owner=99, attempt=2), stored.revision)
            return await super().complete(prompt)

    await titler(claims, bus, TakenOverMeanwhile()).handle(REQUEST, message_sequence=9)
    assert bus.titles == []
    assert len(bus.usage) == 1  # the call was really made, so it is metered
    assert claims.entries["conv1"].claim.owner_sequence == 99
