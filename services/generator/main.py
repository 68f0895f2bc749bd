"""Composition root of the generator: settings, bus, provider, worker."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx2
from openai import DefaultAioHttpClient

from contracts import ChatRequest
from contracts.subjects import (
    CACHE_BUCKET,
    CHAT_REQUEST_SUBJECT,
    CONTROL_SUBJECTS,
    IMAGES_BUCKET,
    REQUESTS_STREAM,
)
from services.generator.adapters.nats_sink import NatsEventSink
from services.generator.adapters.router import build_providers
from services.generator.adapters.turn_history import StreamTurnHistory
from services.generator.breaker import BreakerConfig
from services.generator.cache import CachingProvider, KvResponseCache
from services.generator.cancellation import CancelRegistry
from services.generator.config import GeneratorSettings
from services.generator.handlers import chat_request_handler, control_handler
from services.generator.images import ImageReadingProvider
from services.generator.metrics import BREAKER_STATES
from services.generator.observed import ObservedProvider
from services.generator.ports import ModelProvider
from services.generator.resilience import ResilientProvider, RetryPolicy
from services.generator.semantic.adapters import BusQuestionEmbedder, JetStreamSemanticLog
from services.generator.semantic.index import SemanticIndex
from services.generator.semantic.projection import SemanticProjection
from services.generator.semantic.provider import SemanticCachingProvider
from services.runtime.bus import connect
from services.runtime.catalog import Catalog, environment, load_catalog
from services.runtime.consumer_lag import watch_consumer_lag
from services.runtime.images import ObjectStoreImages
from services.runtime.lifecycle import run_service, until_stopped
from services.runtime.metrics_server import MetricsServer
from services.runtime.startup import catalog_or_exit, start_service
from services.runtime.topology import ensure_streams
from services.runtime.worker import JetStreamWorker, WorkerConfig

log = logging.getLogger("tokenbus.generator")

DURABLE = "generator"


async def serve(settings: GeneratorSettings, catalog: Catalog, stop: asyncio.Event) -> None:
    bus = await connect(settings.nats_url, name="tokenbus-generator")
    await ensure_streams(bus.js)
    metrics = await MetricsServer.start(settings.metrics_host, settings.metrics_port)
    lag = asyncio.create_task(watch_consumer_lag(bus.js, [(REQUESTS_STREAM, DURABLE)]))
    http_client = upstream_http_client(settings)
    resilient = ResilientProvider(
        build_providers(
            catalog,
            environment(),
            http_client,
            settings.upstream_timeout_s,
            settings.stream_idle_timeout_s,
        ),
        catalog,
        RetryPolicy(attempts=settings.retry_attempts, budget_s=settings.retry_budget_s),
        BreakerConfig(
            window_s=settings.breaker_window_s,
            min_calls=settings.breaker_min_calls,
            failure_rate=settings.breaker_failure_rate,
            cooldown_s=settings.breaker_cooldown_s,
        ),
    )
    BREAKER_STATES.watch(resilient.breakers)
    cache = KvResponseCache(await bus.js.key_value(CACHE_BUCKET))
    images = ObjectStoreImages(await bus.js.object_store(IMAGES_BUCKET))
    answering: ModelProvider = ImageReadingProvider(resilient, images)
    projection: SemanticProjection | None = None
    if any(entry.semantic_cache for entry in catalog.models.values()):
        # Inside the exact cache: an exact hit never pays for an embedding.
        projection = SemanticProjection(bus, SemanticIndex())
        await projection.start()
        # No work before the index is built: a restarted replica answers as the others do.
        try:
            await asyncio.wait_for(projection.ready.wait(), settings.semantic_rebuild_timeout_s)
        except TimeoutError:
            log.warning("semantic cache index not caught up; serving, lookups miss until it is")
        answering = SemanticCachingProvider(
            answering,
            catalog,
            projection,
            BusQuestionEmbedder(bus, settings.semantic_embed_timeout_s),
            JetStreamSemanticLog(bus),
        )
    provider = ObservedProvider(CachingProvider(answering, catalog, cache), catalog)
    cancels = CancelRegistry()
    control_sub = await bus.nc.subscribe(CONTROL_SUBJECTS, cb=control_handler(cancels))
    worker = JetStreamWorker(
        bus.js,
        WorkerConfig(
            stream=REQUESTS_STREAM,
            subjects=(CHAT_REQUEST_SUBJECT,),
            durable=DURABLE,
            max_in_flight=settings.max_in_flight,
            ack_wait_s=settings.ack_wait_s,
            max_deliver=settings.max_deliver,
        ),
        ChatRequest.model_validate_json,
        chat_request_handler(
            provider,
            NatsEventSink(bus),
            cancels,
            StreamTurnHistory(bus.js),
            structured_retries=settings.structured_retries,
            coalesce_window_s=settings.coalesce_window_ms / 1000,
        ),
    )
    running = asyncio.create_task(worker.run())
    log.info("generator ready", extra={"models": sorted(catalog.models)})
    try:
        await until_stopped(stop, running)
    finally:
        # Cancels must still be heard while the turns in hand finish.
        worker.stop(grace_s=settings.drain_grace_s)
        await running
        await control_sub.unsubscribe()
        if projection is not None:
            await projection.stop()
        lag.cancel()
        await metrics.stop()
        await http_client.aclose()
        await bus.close()


def upstream_http_client(settings: GeneratorSettings) -> httpx2.AsyncClient:
    """The HTTP client both SDKs send through: httpx2's own transport, or aiohttp's.

    aiohttp is the transport the openai and anthropic SDKs document for higher
    concurrency (`DefaultAioHttpClient`): its C parser replaces httpcore2 and h11,
    which were most of the generator's work per chunk read (bench/NOTES.md).
    """
    options: dict[str, Any] = {
        "limits": httpx2.Limits(
            max_connections=settings.max_in_flight,
            max_keepalive_connections=settings.max_in_flight,
        ),
        "timeout": httpx2.Timeout(settings.upstream_timeout_s, connect=5.0),
        "follow_redirects": False,
    }
    if settings.http_transport == "aiohttp":
        return DefaultAioHttpClient(**options)
    return httpx2.AsyncClient(**options)


def _catalog_with_keys(settings: GeneratorSettings) -> Catalog:
    catalog = load_catalog(settings.catalog_path)
    catalog.check_keys(environment())  # the generator is where the keys are used
    return catalog


def main() -> None:
    settings = GeneratorSettings()
    start_service("generator", settings)
    catalog = catalog_or_exit("generator", lambda: _catalog_with_keys(settings))
    run_service(lambda stop: serve(settings, catalog, stop))


if __name__ == "__main__":
    main()
