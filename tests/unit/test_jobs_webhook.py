"""The webhook handler: one delivery per job, retried with growing delays, then given up."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from contracts import TurnCompleted, TurnDelta, utc_now
from services.gateway.jobs.models import JobRecord
from services.gateway.jobs.webhook import retry_delay, webhook_handler
from services.gateway.jobs.webhook_policy import WebhookPolicy
from services.gateway.turns.items import TurnEvent
from services.runtime.worker import Delivery, Retry

MAX_DELIVER = 6
TURN: dict[str, Any] = {"correlation_id": "c", "conversation_id": "j", "turn_id": "j"}
FINAL = TurnCompleted(**TURN, seq=2, model="m", finish_reason="stop")
EVENTS: list[TurnEvent] = [TurnDelta(**TURN, seq=1, text="hello"), FINAL]


def resolving_to(*addresses: str) -> WebhookPolicy:
    """A policy whose DNS answers with `addresses` (the resolver is its seam)."""

    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return WebhookPolicy(resolve=resolve)


PUBLIC = resolving_to("93.184.215.14")


def job(webhook_url: str | None = "https://example.com/hook?secret=s") -> JobRecord:
    return JobRecord(
        id="j",
        created_at=utc_now(),
        model="m",
        conversation_id="j",
        turn_id="j",
        correlation_id="c",
        deadline_at=utc_now() + timedelta(minutes=2),
        webhook_url=webhook_url,
        webhook_status="none" if webhook_url is None else "pending",
    )


class FakeStore:
    def __init__(self, *jobs: JobRecord) -> None:
        self.jobs = {j.id: j for j in jobs}

    async def create(self, job: JobRecord) -> None:
        self.jobs[job.id] = job

    async def get(self, job_id: str) -> JobRecord | None:
        return self.jobs.get(job_id)

    async def update(
        self, job_id: str, change: Callable[[JobRecord], JobRecord]
    ) -> JobRecord | None:
        if job_id not in self.jobs:
            return None
        self.jobs[job_id] = change(self.jobs[job_id])
        return self.jobs[job_id]

    async def delete(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)


class FakeSender:
    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.addresses: list[str] = []

    async def send(self, url: str, address: str, job_id: str, body: bytes) -> str | None:
        self.sent.append((url, job_id, json.loads(body)))
        self.addresses.append(address)
        return self.answers.pop(0)


async def read_events(conversation_id: str, turn_id: str) -> list[TurnEvent]:
    return EVENTS


def delivery(attempt: int) -> Delivery:
    return Delivery(subject="s", attempt=attempt, stream_sequence=1)


async def test_posts_the_job_status_body_and_marks_it_delivered() -> None:
    store, sender = FakeStore(job()), FakeSender(None)
    await webhook_handler(store, read_events, sender, MAX_DELIVER, PUBLIC)(FINAL, delivery(1))

    [(url, job_id, body)] = sender.sent
    assert (url, job_id) == ("https://example.com/hook?secret=s", "j")
    assert sender.addresses == ["93.184.215.14"]  # the address that was checked
    assert body["id"] == "j"
    assert body["status"] == "completed"
    assert body["result"]["choices"][0]["message"]["content"] == "hello"
    assert (store.jobs["j"].webhook_status, store.jobs["j"].webhook_attempts) == ("delivered", 1)


async def test_a_refused_delivery_is_retried_with_exponential_delays() -> None:
    store, sender = FakeStore(job()), FakeSender("status 500", "ConnectError", None)
    handle = webhook_handler(store, read_events, sender, MAX_DELIVER, PUBLIC)
    delays = []
    for attempt in (1, 2):
        with pytest.raises(Retry) as caught:
            await handle(FINAL, delivery(attempt))
        delays.append(caught.value.delay)
        assert store.jobs["j"].webhook_status == "pending"
    await handle(FINAL, delivery(3))

    assert delays == [1.0, 2.0]
    assert (store.jobs["j"].webhook_status, store.jobs["j"].webhook_attempts) == ("delivered", 3)


async def test_the_last_refused_delivery_marks_the_webhook_failed() -> None:
    store = FakeStore(job())
    sender = FakeSender(*["status 503"] * MAX_DELIVER)
    handle = webhook_handler(store, read_events, sender, MAX_DELIVER, PUBLIC)
    for attempt in range(1, MAX_DELIVER + 1):
        with pytest.raises(Retry):
            await handle(FINAL, delivery(attempt))
    assert (store.jobs["j"].webhook_status, store.jobs["j"].webhook_attempts) == (
        "failed",
        MAX_DELIVER,
    )


async def test_a_redelivered_final_event_of_a_delivered_job_posts_nothing() -> None:
    store, sender = FakeStore(job()), FakeSender(None)
    handle = webhook_handler(store, read_events, sender, MAX_DELIVER, PUBLIC)
    await handle(FINAL, delivery(1))
    await handle(FINAL, delivery(2))
    assert len(sender.sent) == 1
    assert store.jobs["j"].webhook_attempts == 1


async def test_a_job_without_webhook_or_record_posts_nothing() -> None:
    sender = FakeSender()
    await webhook_handler(FakeStore(job(None)), read_events, sender, MAX_DELIVER, PUBLIC)(
        FINAL, delivery(1)
    )
    await webhook_handler(FakeStore(), read_events, sender, MAX_DELIVER, PUBLIC)(FINAL, delivery(1))
    assert sender.sent == []


async def test_a_failure_to_read_the_turn_is_retried_like_a_refusal() -> None:
    async def broken(conversation_id: str, turn_id: str) -> list[TurnEvent]:
        raise TimeoutError

    store, sender = FakeStore(job()), FakeSender()
    with pytest.raises(Retry):
        await webhook_handler(store, broken, sender, MAX_DELIVER, PUBLIC)(FINAL, delivery(1))
    assert sender.sent == []
    assert store.jobs["j"].webhook_status == "pending"


def test_retry_delays_double_and_are_capped() -> None:
    assert [retry_delay(a) for a in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert retry_delay(30) == 60.0


async def test_a_host_that_now_resolves_inside_is_not_called_and_the_webhook_fails() -> None:
    # Accepted at submission, then the name was pointed at the metadata service.
    store, sender = FakeStore(job()), FakeSender()
    await webhook_handler(store, read_events, sender, MAX_DELIVER, resolving_to("169.254.169.254"))(
        FINAL, delivery(1)
    )
    assert sender.sent == []
    assert store.jobs["j"].webhook_status == "failed"
