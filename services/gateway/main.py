"""Composition root of the gateway: settings, bus, relay, FastAPI app, uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from types import FrameType

import uvicorn
from fastapi import FastAPI

from contracts.subjects import (
    CONVERSATIONS_BUCKET,
    IDEMPOTENCY_BUCKET,
    IMAGES_BUCKET,
    KEYS_BUCKET,
    TURNS_STREAM,
    turn_kind_filter,
)
from services.gateway.admission.backpressure import QueueMonitor
from services.gateway.admission.gate import Admission
from services.gateway.admission.ratelimit import RateLimiter
from services.gateway.config import GatewaySettings
from services.gateway.conversations.recorder import parse_recorded_event, turn_recorder
from services.gateway.conversations.store import KvConversationStore
from services.gateway.http.api_document import document_responses
from services.gateway.http.body_limit import BodyLimitMiddleware
from services.gateway.http.drain import Drain, DrainMiddleware
from services.gateway.http.errors import install_error_handlers
from services.gateway.http.rate_headers import RateHeadersMiddleware
from services.gateway.http.request_id import RequestIdMiddleware
from services.gateway.http.request_metrics import HttpMetricsMiddleware
from services.gateway.jobs import BackgroundJobs
from services.gateway.jobs.webhook_policy import WebhookPolicy
from services.gateway.routes import (
    chat,
    conversations,
    embeddings,
    health,
    jobs,
    messages,
    metrics,
    models,
    responses,
    usage,
    web,
)
from services.gateway.state import GatewayState
from services.gateway.turns.idempotency import IdempotencyKeys
from services.gateway.turns.relay import TurnRelay
from services.runtime.budgets import Budgets
from services.runtime.bus import connect
from services.runtime.catalog import Catalog, load_catalog
from services.runtime.consumer_lag import watch_consumer_lag
from services.runtime.images import ObjectStoreImages
from services.runtime.keys import WatchedKeyStore
from services.runtime.startup import catalog_or_exit, start_service
from services.runtime.topology import ensure_streams
from services.runtime.worker import JetStreamWorker, WorkerConfig

log = logging.getLogger("tokenbus.gateway")

RECORDER_DURABLE = "conversations"
# No shutdown step may hold the process: past this it is abandoned (and logged).
_SHUTDOWN_STEP_S = 5.0


async def _bounded(step: str, work: Awaitable[None]) -> None:
    try:
        await asyncio.wait_for(work, _SHUTDOWN_STEP_S)
    except TimeoutError:
        log.warning("shutdown step timed out", extra={"step": step})


# Probes and scrapes are not worth a trace each.
_UNTRACED_URLS = "/healthz,/readyz,/metrics"


def create_app(settings: GatewaySettings, catalog: Catalog, drain: Drain | None = None) -> FastAPI:
    drain = drain or Drain(settings.drain_grace_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bus = await connect(
            settings.nats_url,
            name=f"tokenbus-gateway-{settings.gateway_id}",
            request_timeout_s=settings.bus_timeout_s,
        )
        await ensure_streams(bus.js)
        relay = TurnRelay(bus, settings.gateway_id)
        await relay.start()
        store = KvConversationStore(await bus.js.key_value(CONVERSATIONS_BUCKET), bus.js)
        recorder = JetStreamWorker(
            bus.js,
            WorkerConfig(
                stream=TURNS_STREAM,
                subjects=(
                    turn_kind_filter("completed"),
                    turn_kind_filter("failed"),
                    turn_kind_filter("title"),
                ),
                durable=RECORDER_DURABLE,
            ),
            parse_recorded_event,
            turn_recorder(bus, store),
        )
        recording = asyncio.create_task(recorder.run())
        lag = asyncio.create_task(watch_consumer_lag(bus.js, [(TURNS_STREAM, RECORDER_DURABLE)]))
        queue = QueueMonitor(bus, settings.max_queue_age_s)
        queue.start()
        webhooks = WebhookPolicy(settings.webhook_networks)
        background_jobs = await BackgroundJobs.start(bus, webhooks)
        keys = WatchedKeyStore(await bus.js.key_value(KEYS_BUCKET))
        await keys.start()
        app.state.gateway = GatewayState(
            settings=settings,
            catalog=catalog,
            drain=drain,
            bus=bus,
            relay=relay,
            conversations=store,
            idempotency=IdempotencyKeys(await bus.js.key_value(IDEMPOTENCY_BUCKET)),
            queue=queue,
            jobs=background_jobs.store,
            webhooks=webhooks,
            keys=keys,
            admission=Admission(keys, RateLimiter(bus.nc, bus.js), Budgets(bus.js)),
            images=ObjectStoreImages(await bus.js.object_store(IMAGES_BUCKET)),
        )
        log.info("gateway ready", extra={"gateway_id": settings.gateway_id})
        try:
            yield
        finally:
            lag.cancel()
            await _bounded("background jobs", background_jobs.stop())
            await _bounded("queue monitor", queue.stop())
            await _bounded("key watch", keys.stop())
            # What the recorder holds past this is handed back to another replica.
            recorder.stop(grace_s=_SHUTDOWN_STEP_S)
            await _bounded("recorder", recording)
            await _bounded("relay", relay.stop())
            await _bounded("bus", bus.close())

    # The documentation pages load their scripts from a CDN: off unless asked for.
    docs = settings.api_docs
    app = FastAPI(
        title="tokenbus gateway",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    # Added last = runs first: the request id is set (and answered) even for a 413,
    # and the metrics see every status the client sees.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateHeadersMiddleware)
    app.add_middleware(HttpMetricsMiddleware)
    app.add_middleware(DrainMiddleware, drain=drain)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    document_responses(app)
    for module in (
        chat,
        embeddings,
        messages,
        responses,
        conversations,
        jobs,
        models,
        usage,
        health,
        metrics,
        web,
    ):
        app.include_router(module.router)
    return app


def main() -> None:
    settings = GatewaySettings()
    tracing = start_service("gateway", settings)
    catalog = catalog_or_exit("gateway", lambda: load_catalog(settings.catalog_path))
    drain = Drain(settings.drain_grace_s)
    app = create_app(settings, catalog, drain)
    if tracing:
        # Imported only when tracing: a server span per request, parent of the bus spans.
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, excluded_urls=_UNTRACED_URLS, exclude_spans=["receive", "send"]
        )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        # Past the drain's own deadline: streams end themselves first, resumably.
        timeout_graceful_shutdown=int(settings.drain_delay_s + settings.drain_grace_s) + 10,
    )
    DrainingServer(config, drain, settings.drain_delay_s).run()


class DrainingServer(uvicorn.Server):
    """uvicorn, with readiness turned off (and streams given their grace) before it stops."""

    def __init__(self, config: uvicorn.Config, drain: Drain, delay_s: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._delay_s = delay_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit = asyncio.Event()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def main_loop(self) -> None:
        # uvicorn's own loop wakes ten times a second to look at should_exit (and
        # refreshes the Date header every tenth time): most of an idle gateway's CPU.
        # Here it wakes once a second for the Date header, and at once to exit.
        while not await self.on_tick(0):  # tick 0: the Date header is refreshed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 1.0)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain.started or self._loop is None:  # a second signal: stop now
            super().handle_exit(sig, frame)
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._exit.set)
            return
        # Called from the signal handler: hand the work to the event loop.
        self._loop.call_soon_threadsafe(self._drain.begin)
        self._loop.call_soon_threadsafe(
            self._loop.call_later, self._delay_s, self._exit_now, sig, frame
        )

    def _exit_now(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._exit.set()


if __name__ == "__main__":
    main()
