"""The jobs bucket and the webhook consumer, owned by the gateway's lifespan."""

from __future__ import annotations

import asyncio
import functools

import httpx

from contracts import TurnCompleted, TurnFailed, parse_final_turn_event
from contracts.subjects import JOBS_BUCKET
from services.gateway.jobs.events import stored_turn_events
from services.gateway.jobs.store import JobStore, KvJobStore
from services.gateway.jobs.webhook import (
    WEBHOOK_CONSUMER,
    HttpxWebhookSender,
    webhook_handler,
)
from services.gateway.jobs.webhook_policy import WebhookPolicy
from services.runtime.bus import Bus
from services.runtime.worker import JetStreamWorker

__all__ = ["BackgroundJobs"]

_WEBHOOK_TIMEOUT_S = 10.0


class BackgroundJobs:
    """Start with `await BackgroundJobs.start(bus)`; `await stop()` before the bus closes."""

    def __init__(
        self,
        store: JobStore,
        worker: JetStreamWorker[TurnCompleted | TurnFailed],
        client: httpx.AsyncClient,
    ) -> None:
        self.store = store
        self._worker = worker
        self._client = client
        self._running: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, bus: Bus, policy: WebhookPolicy) -> BackgroundJobs:
        store = KvJobStore(await bus.js.key_value(JOBS_BUCKET))
        client = httpx.AsyncClient(timeout=_WEBHOOK_TIMEOUT_S, follow_redirects=False)
        handler = webhook_handler(
            store,
            functools.partial(stored_turn_events, bus),
            HttpxWebhookSender(client),
            WEBHOOK_CONSUMER.max_deliver,
            policy,
        )
        jobs = cls(
            store,
            JetStreamWorker(bus.js, WEBHOOK_CONSUMER, parse_final_turn_event, handler),
            client,
        )
        jobs._running = asyncio.create_task(jobs._worker.run())
        return jobs

    async def stop(self) -> None:
        """Finish in-flight deliveries, then close the HTTP client."""
        self._worker.stop()
        if self._running is not None:
            await self._running
        await self._client.aclose()
