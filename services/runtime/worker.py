"""A competing-consumer worker on a durable JetStream pull consumer.

Every service that does work from the bus runs one of these: replicas share the
durable consumer and split the messages; each replica bounds its in-flight
messages; a message is acked only when its handler returns. The error policy is
explicit: a payload that breaks the contract, or a handler raising `Poison`, is
dead-lettered with the reason and terminated; `Retry` and unexpected errors are
nacked with a delay until `max_deliver`, then dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from contracts.base import new_id
from contracts.deadletter import DeadLetter
from contracts.subjects import deadletter_subject
from services.runtime.logs import bind_correlation_id
from services.runtime.metrics import CONSUMER_HANDLE_SECONDS, CONSUMER_MESSAGES
from services.runtime.telemetry import consumer_span, mark_failed, with_trace_context

__all__ = ["Delivery", "JetStreamWorker", "Poison", "Retry", "WorkerConfig"]

_UNCONFIRMED = (NoRespondersError, NatsTimeoutError)

log = logging.getLogger("tokenbus.worker")

T = TypeVar("T")

_PAYLOAD_KEEP = 4096
_MAX_BATCH = 256
# An idle worker's pull waits this long: each pull is a request the server handles,
# and a pull a second per worker was most of the idle stack's CPU. stop() does not
# wait for it (the pull is cancelled); the server drops it when it expires. 30 s was
# tried: test_an_open_breaker_fails_over_to_the_fallback_without_trying_the_upstream
# then got a 504 under load, not reproduced since and not explained (bench/NOTES.md,
# issue 17); 5 s keeps most of the saving until it is.
_IDLE_PULL_S = 5.0


class Poison(Exception):
    """The message can never be processed; dead-letter it with this reason."""


class Retry(Exception):
    """A transient failure; redeliver after `delay` seconds."""

    def __init__(self, reason: str, delay: float = 1.0) -> None:
        super().__init__(reason)
        self.delay = delay


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the handler may know about this delivery of the message."""

    subject: str
    attempt: int
    stream_sequence: int


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    stream: str
    subjects: tuple[str, ...]
    durable: str
    max_in_flight: int = 64
    # Short, so a dead replica's messages go to another one within seconds; a living
    # one keeps its messages with in_progress beats at a quarter of this.
    ack_wait_s: float = 3.0
    max_deliver: int = 5
    retry_delay_s: float = 1.0


Handler = Callable[[T, Delivery], Awaitable[None]]


class JetStreamWorker(Generic[T]):
    def __init__(
        self,
        js: JetStreamContext,
        config: WorkerConfig,
        decode: Callable[[bytes], T],
        handler: Handler[T],
    ) -> None:
        """`decode` turns a payload into the contract (e.g. `Model.model_validate_json`);
        a pydantic ValidationError from it dead-letters the message."""
        self._js = js
        self._config = config
        self._decode = decode
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()
        self._capacity = asyncio.Event()
        self._stopping = asyncio.Event()
        self._grace_s: float | None = None
        self._pulling: asyncio.Task[list[Msg]] | None = None

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def consumer_config(self) -> ConsumerConfig:
        c = self._config
        return ConsumerConfig(
            durable_name=c.durable,
            filter_subject=c.subjects[0] if len(c.subjects) == 1 else None,
            filter_subjects=list(c.subjects) if len(c.subjects) > 1 else None,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=c.ack_wait_s,
            max_deliver=c.max_deliver,
            # The server-side bound: with every replica at its limit, nothing more is handed out.
            max_ack_pending=max(c.max_in_flight * 16, 1024),
        )

    async def run(self) -> None:
        """Fetch and dispatch until stop(); returns after in-flight work is done."""
        c = self._config
        # Created or updated in place: a consumer made by an older release takes the
        # settings of this one (pull_subscribe alone would keep the old ones).
        await self._js.add_consumer(c.stream, config=self.consumer_config())
        sub = await self._js.pull_subscribe(
            c.subjects[0], durable=c.durable, stream=c.stream, config=self.consumer_config()
        )
        busy = False
        try:
            while not self._stopping.is_set():
                free = c.max_in_flight - len(self._tasks)
                if free <= 0:
                    self._capacity.clear()
                    await self._capacity.wait()
                    continue
                # With nothing queued, nats-py's fetch waits to fill the whole batch
                # (up to the timeout), which would hold the first request of a burst
                # for a second. So: one message while idle (returned the moment it
                # arrives), then, while busy, whatever is already queued, at once.
                batch = min(free, _MAX_BATCH) if busy else 1
                pull = self._pulling = asyncio.create_task(
                    sub.fetch(batch=batch, timeout=1.0 if busy else _IDLE_PULL_S)
                )
                try:
                    msgs = await pull
                except (FetchTimeoutError, TimeoutError):
                    busy = False
                    continue
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if not pull.cancelled() or (task is not None and task.cancelling()):
                        raise  # this loop itself is cancelled, not only its pull
                    break
                except Exception as exc:
                    log.warning("fetch failed", extra={"error_type": type(exc).__name__})
                    await asyncio.sleep(0.5)
                    continue
                busy = bool(msgs)
                for msg in msgs:
                    self._spawn(msg)
        finally:
            if self._tasks:
                _, unfinished = await asyncio.wait(set(self._tasks), timeout=self._grace_s)
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def stop(self, grace_s: float | None = None) -> None:
        """Fetch nothing more; in-flight messages get `grace_s` (None: all the time they need).

        What is still running after the grace is handed back (nak) for another replica.
        """
        self._grace_s = grace_s
        self._stopping.set()
        self._capacity.set()
        if self._pulling is not None and not self._pulling.done():
            self._pulling.cancel()

    def _spawn(self, msg: Msg) -> None:
        task = asyncio.create_task(self._process(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._capacity.set()

    async def _process(self, msg: Msg) -> None:
        # Every consumer goes through here: the message's span is a child of the
        # publisher's (W3C traceparent in the headers), so a request is one trace.
        started = time.monotonic()
        with consumer_span(self._config.durable, msg.subject, msg.headers):
            await self._handle(msg)
        CONSUMER_HANDLE_SECONDS.labels(self._config.durable).observe(time.monotonic() - started)

    async def _handle(self, msg: Msg) -> None:
        meta = msg.metadata
        delivery = Delivery(
            subject=msg.subject,
            attempt=meta.num_delivered,
            stream_sequence=meta.sequence.stream,
        )
        try:
            payload = self._decode(msg.data)
        except ValidationError as exc:
            await self._dead_letter(msg, delivery, f"contract violation: {_summarise(exc)}")
            return
        except Poison as exc:
            await self._dead_letter(msg, delivery, str(exc))
            return
        correlation_id = getattr(payload, "correlation_id", None)
        bind_correlation_id(correlation_id if isinstance(correlation_id, str) else None)
        heartbeat = asyncio.create_task(self._keep_alive(msg))
        try:
            await self._handler(payload, delivery)
        except asyncio.CancelledError:
            # Stopped past the drain grace: hand the message back now, not after ack_wait.
            with contextlib.suppress(Exception):
                await msg.nak()
            self._outcome("handed_back")
            raise
        except Poison as exc:
            await self._dead_letter(msg, delivery, str(exc))
        except Retry as exc:
            await self._retry_or_give_up(msg, delivery, str(exc), exc.delay)
        except Exception as exc:
            # The type is enough to find it; a traceback could carry user data or secrets.
            log.error(
                "handler failed",
                extra={"consumer": self._config.durable, "error_type": type(exc).__name__},
            )
            await self._retry_or_give_up(
                msg, delivery, f"handler error: {type(exc).__name__}", self._config.retry_delay_s
            )
        else:
            await self._ack(msg)
            self._outcome("handled")
        finally:
            heartbeat.cancel()

    async def _ack(self, msg: Msg) -> None:
        # A plain ack is fire-and-forget: sent while the consumer elects a new leader
        # (a cluster node died) or while we reconnect, it is lost, and the message comes
        # back after ack_wait to be handled twice. So wait for the server to confirm it.
        try:
            await msg.ack_sync(timeout=2.0)
            return
        except _UNCONFIRMED:
            pass  # the common case stays one call; retries only after a miss
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_UNCONFIRMED),
            stop=stop_after_delay(self._config.ack_wait_s),
            wait=wait_fixed(0.25),
            reraise=True,
        )
        try:
            await retrying(msg.ack_sync, timeout=2.0)
        except _UNCONFIRMED as exc:
            log.warning("ack unconfirmed", extra={"error_type": type(exc).__name__})

    async def _keep_alive(self, msg: Msg) -> None:
        # Long generations outlive ack_wait; tell the server we are still on it, often
        # enough that a busy event loop or a lost beat does not hand the work away.
        interval = self._config.ack_wait_s / 4
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _retry_or_give_up(
        self, msg: Msg, delivery: Delivery, reason: str, delay: float
    ) -> None:
        if delivery.attempt >= self._config.max_deliver:
            await self._dead_letter(
                msg, delivery, f"gave up after {delivery.attempt} deliveries: {reason}"
            )
        else:
            self._outcome("retried")
            await msg.nak(delay=delay)

    async def _dead_letter(self, msg: Msg, delivery: Delivery, reason: str) -> None:
        letter = DeadLetter(
            correlation_id=new_id(),
            consumer=self._config.durable,
            original_subject=msg.subject,
            reason=reason[:2000],
            stream_sequence=delivery.stream_sequence,
            delivered=delivery.attempt,
            payload=msg.data[:_PAYLOAD_KEEP].decode("utf-8", errors="replace"),
        )
        msg_id = f"dl-{self._config.durable}-{delivery.stream_sequence}"
        await self._js.publish(
            deadletter_subject(self._config.durable),
            letter.model_dump_json().encode(),
            headers=with_trace_context({"Nats-Msg-Id": msg_id}),
        )
        self._outcome("dead_lettered")
        log.warning(
            "dead-lettered",
            extra={"consumer": self._config.durable, "stream_sequence": delivery.stream_sequence},
        )
        await msg.term()

    def _outcome(self, outcome: str) -> None:
        CONSUMER_MESSAGES.labels(self._config.durable, outcome).inc()
        if outcome != "handled":
            mark_failed(outcome)


def _summarise(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()]
    return "; ".join(parts[:10])
