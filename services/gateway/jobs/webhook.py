"""Telling a job's webhook that the job ended, with retries through JetStream redelivery."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import httpx
import orjson

from contracts import TurnCompleted, TurnFailed, utc_now
from contracts.subjects import TURNS_STREAM, turn_event_subject
from services.gateway.jobs.models import JOBS_ROUTE, JobRecord, WebhookStatus
from services.gateway.jobs.status import job_view
from services.gateway.jobs.store import JobStore
from services.gateway.jobs.webhook_policy import WebhookPolicy, WebhookRefused, pinned
from services.gateway.turns.items import TurnEvent
from services.runtime.worker import Delivery, Handler, Retry, WorkerConfig

__all__ = [
    "WEBHOOK_CONSUMER",
    "HttpxWebhookSender",
    "ReadEvents",
    "WebhookSender",
    "retry_delay",
    "webhook_handler",
]

log = logging.getLogger("tokenbus.gateway.jobs")

WEBHOOK_CONSUMER = WorkerConfig(
    stream=TURNS_STREAM,
    subjects=(
        turn_event_subject(JOBS_ROUTE, "*", "*", "completed"),
        turn_event_subject(JOBS_ROUTE, "*", "*", "failed"),
    ),
    durable="jobs-webhook",
    max_deliver=6,
)

_MAX_DELAY_S = 60.0

ReadEvents = Callable[[str, str], Awaitable[list[TurnEvent]]]


class WebhookSender(Protocol):
    async def send(self, url: str, address: str, job_id: str, body: bytes) -> str | None:
        """POST to `url` connecting to `address` (checked); None once the receiver took it
        (2xx), otherwise why not, never the URL."""
        ...


class HttpxWebhookSender:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(self, url: str, address: str, job_id: str, body: bytes) -> str | None:
        target = pinned(url, address)
        headers = {
            "content-type": "application/json",
            "tokenbus-job-id": job_id,
            **target.headers,
        }
        request = self._client.build_request(
            "POST", target.url, content=body, headers=headers, extensions=target.extensions
        )
        try:
            # Streamed so a receiver's large answer is never read into memory.
            answer = await self._client.send(request, stream=True)
            await answer.aclose()
        except httpx.HTTPError as exc:
            return type(exc).__name__
        status = answer.status_code
        return None if 200 <= status < 300 else f"status {status}"


def retry_delay(attempt: int) -> float:
    """1, 2, 4, 8 ... seconds after the first, second, third ... failed delivery."""
    return min(2.0 ** (attempt - 1), _MAX_DELAY_S)


def webhook_handler(
    store: JobStore,
    read_events: ReadEvents,
    sender: WebhookSender,
    max_deliver: int,
    policy: WebhookPolicy,
) -> Handler[TurnCompleted | TurnFailed]:
    async def deliver(final: TurnCompleted | TurnFailed, delivery: Delivery) -> None:
        job = await store.get(final.turn_id)
        if job is None or job.webhook_url is None or job.webhook_status != "pending":
            return  # no webhook, or already delivered or given up (a redelivery)
        try:
            address = await policy.check(job.webhook_url)
        except WebhookRefused as exc:
            # Its name now points somewhere it may not go: no retry will change that.
            log.warning("webhook refused", extra={"job_id": job.id, "reason": exc.reason})
            await store.update(job.id, _marked("failed"))
            return
        try:
            refusal = await attempt_delivery(job, job.webhook_url, address)
        except Exception as exc:
            refusal = f"error {type(exc).__name__}"
        if refusal is None:
            await store.update(job.id, _marked("delivered"))
            log.info("webhook delivered", extra={"job_id": job.id, "attempt": delivery.attempt})
            return
        log.warning(
            "webhook not delivered",
            extra={"job_id": job.id, "reason": refusal, "attempt": delivery.attempt},
        )
        if delivery.attempt >= max_deliver:
            # The worker dead-letters the event after this; the record says so too.
            await store.update(job.id, _marked("failed"))
        raise Retry(f"webhook {refusal}", delay=retry_delay(delivery.attempt))

    async def attempt_delivery(job: JobRecord, url: str, address: str) -> str | None:
        events = await read_events(job.conversation_id, job.turn_id)
        counted = await store.update(job.id, _count_attempt)
        if counted is None:
            return "job record gone"
        body = orjson.dumps(job_view(counted, events, utc_now()))
        return await sender.send(url, address, job.id, body)

    return deliver


def _count_attempt(job: JobRecord) -> JobRecord:
    return job.model_copy(update={"webhook_attempts": job.webhook_attempts + 1})


def _marked(status: WebhookStatus) -> Callable[[JobRecord], JobRecord]:
    def mark(job: JobRecord) -> JobRecord:
        return job.model_copy(update={"webhook_status": status})

    return mark
