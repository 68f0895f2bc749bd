"""Composition root of the titler: settings, catalog, bus, utility model, one durable consumer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import timedelta

import httpx2

from contracts import TitleRequest
from contracts.subjects import REQUESTS_STREAM, TITLE_REQUEST_SUBJECT, TITLES_BUCKET
from services.runtime.bus import connect
from services.runtime.catalog import CatalogError, ModelEntry, environment, load_catalog
from services.runtime.consumer_lag import watch_consumer_lag
from services.runtime.lifecycle import run_service, until_stopped
from services.runtime.logs import configure_logging
from services.runtime.metrics_server import MetricsServer
from services.runtime.telemetry import setup_tracing
from services.runtime.topology import ensure_streams
from services.runtime.worker import JetStreamWorker, WorkerConfig
from services.titler.adapters.kv_claims import KvClaimStore
from services.titler.adapters.models import build_title_model
from services.titler.adapters.nats_publisher import NatsTitlePublisher
from services.titler.config import TitlerSettings
from services.titler.handlers import title_request_handler
from services.titler.service import Titler
from services.titler.utility import utility_entry

__all__ = ["DURABLE", "main", "serve", "worker_config"]

log = logging.getLogger("tokenbus.titler")

DURABLE = "titler"


def worker_config(settings: TitlerSettings) -> WorkerConfig:
    return WorkerConfig(
        stream=REQUESTS_STREAM,
        subjects=(TITLE_REQUEST_SUBJECT,),
        durable=DURABLE,
        max_in_flight=settings.max_in_flight,
        ack_wait_s=settings.ack_wait_s,
        max_deliver=settings.max_deliver,
    )


async def serve(
    settings: TitlerSettings,
    entry: ModelEntry | None,
    env: Mapping[str, str],
    stop: asyncio.Event,
) -> None:
    bus = await connect(settings.nats_url, name="tokenbus-titler")
    await ensure_streams(bus.js)
    metrics = await MetricsServer.start(settings.metrics_host, settings.metrics_port)
    lag = asyncio.create_task(watch_consumer_lag(bus.js, [(REQUESTS_STREAM, DURABLE)]))
    http_client = httpx2.AsyncClient(
        limits=httpx2.Limits(max_connections=settings.max_in_flight),
        timeout=httpx2.Timeout(settings.timeout_s, connect=5.0),
    )
    model = None
    if entry is not None:
        model = build_title_model(
            entry,
            env,
            http_client,
            max_tokens=settings.max_output_tokens,
            temperature=settings.temperature,
            timeout_s=settings.timeout_s,
        )
    titler = Titler(
        claims=KvClaimStore(await bus.js.key_value(TITLES_BUCKET)),
        publisher=NatsTitlePublisher(bus.js),
        model=model,
        stale_after=timedelta(seconds=settings.claim_stale_s),
    )
    worker = JetStreamWorker(
        bus.js,
        worker_config(settings),
        TitleRequest.model_validate_json,
        title_request_handler(titler),
    )
    running = asyncio.create_task(worker.run())
    log.info("titler ready", extra={"model": model.name if model else None})
    try:
        await until_stopped(stop, running)
    finally:
        worker.stop()
        await running
        lag.cancel()
        await metrics.stop()
        await http_client.aclose()
        await bus.close()


def main() -> None:
    settings = TitlerSettings()
    configure_logging("titler", settings.log_level)
    setup_tracing("titler")
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per model call otherwise
    env = environment()
    try:
        entry = utility_entry(load_catalog(settings.catalog_path), settings.model)
        if entry is not None:
            entry.resolved_base_url(env)  # a missing ${VAR} is a start-up error, not a fallback
    except CatalogError as exc:
        log.error("refusing to start: bad model catalog", extra={"reason": str(exc)})
        raise SystemExit(2) from None
    if entry is None:
        log.warning("no utility model in the catalog: titles come from the fallback only")
    elif entry.api_key_env and not env.get(entry.api_key_env):
        log.warning("the utility model's key is not set", extra={"key_env": entry.api_key_env})
    run_service(lambda stop: serve(settings, entry, env, stop))


if __name__ == "__main__":
    main()
