"""Composition root of the titler: settings, catalog, bus, utility model, one durable consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta

import httpx2

from contracts import TitleRequest
from contracts.subjects import REQUESTS_STREAM, TITLE_REQUEST_SUBJECT, TITLES_BUCKET
from services.runtime.bus import Bus
from services.runtime.catalog import ModelEntry, environment, load_catalog
from services.runtime.consumer_service import serve_consumer
from services.runtime.lifecycle import run_service
from services.runtime.startup import catalog_or_exit, start_service
from services.runtime.worker import Handler, WorkerConfig
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
    @contextlib.asynccontextmanager
    async def titles_handler(bus: Bus) -> AsyncIterator[Handler[TitleRequest]]:
        async with httpx2.AsyncClient(
            limits=httpx2.Limits(max_connections=settings.max_in_flight),
            timeout=httpx2.Timeout(settings.timeout_s, connect=5.0),
        ) as http_client:
            model = None
            if entry is not None:
                model = build_title_model(
                    entry,
                    env,
                    http_client,
                    max_tokens=settings.max_output_tokens,
                    temperature=settings.temperature,
                    timeout_s=settings.timeout_s,
                    reasoning_max_tokens=settings.reasoning_max_output_tokens,
                )
            titler = Titler(
                claims=KvClaimStore(await bus.js.key_value(TITLES_BUCKET)),
                publisher=NatsTitlePublisher(bus.js),
                model=model,
                stale_after=timedelta(seconds=settings.claim_stale_s),
            )
            log.info("titles from", extra={"model": model.name if model else None})
            yield title_request_handler(titler)

    await serve_consumer(
        nats_url=settings.nats_url,
        config=worker_config(settings),
        decode=TitleRequest.model_validate_json,
        handler_scope=titles_handler,
        stop=stop,
        metrics_host=settings.metrics_host,
        metrics_port=settings.metrics_port,
    )


def _utility_model(settings: TitlerSettings, env: Mapping[str, str]) -> ModelEntry | None:
    entry = utility_entry(load_catalog(settings.catalog_path), settings.model)
    if entry is not None:
        entry.resolved_base_url(env)  # a missing ${VAR} is a start-up error, not a fallback
    return entry


def main() -> None:
    settings = TitlerSettings()
    start_service("titler", settings)
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per model call otherwise
    env = environment()
    entry = catalog_or_exit("titler", lambda: _utility_model(settings, env))
    if entry is None:
        log.warning("no utility model in the catalog: titles come from the fallback only")
    elif entry.api_key_env and not env.get(entry.api_key_env):
        log.warning("the utility model's key is not set", extra={"key_env": entry.api_key_env})
    run_service(lambda stop: serve(settings, entry, env, stop))


if __name__ == "__main__":
    main()
