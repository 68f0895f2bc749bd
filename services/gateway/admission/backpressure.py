"""Refusing new work while the generators are far behind, instead of queueing it to time out.

Each gateway replica looks at the generator consumer once a second while it
gets requests: how many requests wait, and how long the oldest has waited.
Per-request checks would cost a bus round trip on the hot path; polling while
no request comes would cost the idle stack a round trip a second for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from nats.js.errors import NotFoundError

from contracts.subjects import REQUESTS_STREAM
from services.gateway.http.errors import ApiError
from services.runtime.bus import Bus

__all__ = ["QueueMonitor"]

log = logging.getLogger("tokenbus.gateway.backpressure")

GENERATOR_CONSUMER = "generator"


class QueueMonitor:
    def __init__(self, bus: Bus, max_age_s: float, interval_s: float = 1.0) -> None:
        self._bus = bus
        self._max_age_s = max_age_s
        self._interval_s = interval_s
        self.waiting = 0
        self.oldest_age_s = 0.0
        self._task: asyncio.Task[None] | None = None
        self._asked = asyncio.Event()

    def check(self) -> None:
        """Raise 503 with Retry-After while the oldest waiting request is too old."""
        self._asked.set()
        if self.oldest_age_s > self._max_age_s:
            raise ApiError(
                503,
                "The model servers are overloaded; try again shortly.",
                "overloaded",
                headers={"Retry-After": str(max(1, round(self.oldest_age_s - self._max_age_s)))},
            )

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # keep the last reading; the bus may be reconnecting
                log.debug("queue check failed", extra={"error_type": type(exc).__name__})
            await asyncio.sleep(self._interval_s)
            if self.waiting == 0 and not self._asked.is_set():
                # Nothing waited and nobody asked since: sleep until a request comes.
                await self._asked.wait()
            self._asked.clear()

    async def refresh(self) -> None:
        js = self._bus.js
        try:
            info = await js.consumer_info(REQUESTS_STREAM, GENERATOR_CONSUMER)
        except NotFoundError:
            self.waiting, self.oldest_age_s = 0, 0.0
            return
        self.waiting = info.num_pending or 0
        if self.waiting == 0 or info.delivered is None:
            self.oldest_age_s = 0.0
            return
        try:
            oldest = await js.get_msg(REQUESTS_STREAM, seq=info.delivered.stream_seq + 1, next=True)
        except NotFoundError:
            self.oldest_age_s = 0.0
            return
        if oldest.time is None:
            self.oldest_age_s = 0.0
            return
        self.oldest_age_s = max(0.0, (datetime.now(UTC) - oldest.time).total_seconds())
