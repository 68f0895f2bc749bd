"""Composition root of the gateway: settings, bus, relay, FastAPI app, uvicorn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from contracts.subjects import (
    CONVERSATIONS_BUCKET,
    IDEMPOTENCY_BUCKET,
    KEYS_BUCKET,
    TURNS_STREAM,
    turn_kind_filter,
)
from services.gateway.admission import Admission
from services.gateway.backpressure import QueueMonitor
from services.gateway.body_limit import BodyLimitMiddleware
from services.gateway.config import GatewaySettings
from services.gateway.conversations.recorder import parse_recorded_event, turn_recorder
from services.gateway.conversations.store import KvConversationStore
from services.gateway.errors import install_error_handlers
from services.gateway.idempotency import IdempotencyKeys
from services.gateway.jobs import BackgroundJobs
from services.gateway.ratelimit import RateLimiter
from services.gateway.relay import TurnRelay
from services.gateway.routes import chat, conversations, health, jobs, models, usage, web
from services.gateway.state import GatewayState
from services.runtime.budgets import Budgets
from services.runtime.bus import connect
from services.runtime.catalog import Catalog, CatalogError, load_catalog
from services.runtime.keys import KeyStore
from services.runtime.logs import configure_logging
from services.runtime.topology import ensure_streams
from services.runtime.worker import JetStreamWorker, WorkerConfig

log = logging.getLogger("tokenbus.gateway")


def create_app(settings: GatewaySettings, catalog: Catalog) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        bus = await connect(settings.nats_url, name=f"tokenbus-gateway-{settings.gateway_id}")
        await ensure_streams(bus.js)
        relay = TurnRelay(bus, settings.gateway_id)
        await relay.start()
        store = KvConversationStore(await bus.js.key_value(CONVERSATIONS_BUCKET))
        recorder = JetStreamWorker(
            bus.js,
            WorkerConfig(
                stream=TURNS_STREAM,
                subjects=(
                    turn_kind_filter("completed"),
                    turn_kind_filter("failed"),
                    turn_kind_filter("title"),
                ),
                durable="conversations",
            ),
            parse_recorded_event,
            turn_recorder(bus, store),
        )
        recording = asyncio.create_task(recorder.run())
        queue = QueueMonitor(bus, settings.max_queue_age_s)
        queue.start()
        background_jobs = await BackgroundJobs.start(bus)
        keys = KeyStore(await bus.js.key_value(KEYS_BUCKET))
        app.state.gateway = GatewayState(
            settings=settings,
            catalog=catalog,
            bus=bus,
            relay=relay,
            conversations=store,
            idempotency=IdempotencyKeys(await bus.js.key_value(IDEMPOTENCY_BUCKET)),
            queue=queue,
            jobs=background_jobs.store,
            keys=keys,
            admission=Admission(keys, RateLimiter(bus.nc), Budgets(bus.js)),
        )
        log.info("gateway ready", extra={"gateway_id": settings.gateway_id})
        try:
            yield
        finally:
            await background_jobs.stop()
            await queue.stop()
            recorder.stop()
            await recording
            await relay.stop()
            await bus.close()

    app = FastAPI(title="tokenbus gateway", version="0.1.0", lifespan=lifespan)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_error_handlers(app)
    for module in (chat, conversations, jobs, models, usage, health, web):
        app.include_router(module.router)
    return app


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    try:
        catalog = load_catalog(settings.catalog_path)
    except CatalogError as exc:
        log.error("refusing to start: bad model catalog", extra={"reason": str(exc)})
        raise SystemExit(2) from None
    uvicorn.run(
        create_app(settings, catalog),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
