"""Composition root of the generator: settings, bus, provider, worker."""

from __future__ import annotations

import asyncio
import logging

import httpx2
from openai import AsyncOpenAI

from contracts import ChatRequest
from contracts.subjects import CHAT_REQUEST_SUBJECT, CONTROL_SUBJECTS, REQUESTS_STREAM
from services.generator.adapters.nats_sink import NatsEventSink
from services.generator.adapters.openai_provider import OpenAIProvider
from services.generator.cancellation import CancelRegistry
from services.generator.config import GeneratorSettings
from services.generator.handlers import chat_request_handler, control_handler
from services.runtime.bus import connect
from services.runtime.lifecycle import run_service, until_stopped
from services.runtime.logs import configure_logging
from services.runtime.topology import ensure_streams
from services.runtime.worker import JetStreamWorker, WorkerConfig

log = logging.getLogger("tokenbus.generator")

DURABLE = "generator"


async def serve(settings: GeneratorSettings, stop: asyncio.Event) -> None:
    bus = await connect(settings.nats_url, name="tokenbus-generator")
    await ensure_streams(bus.js)
    http_client = httpx2.AsyncClient(
        limits=httpx2.Limits(
            max_connections=settings.max_in_flight,
            max_keepalive_connections=settings.max_in_flight,
        ),
        timeout=httpx2.Timeout(settings.upstream_timeout_s, connect=5.0),
    )
    client = AsyncOpenAI(
        base_url=settings.upstream_base_url,
        api_key=settings.upstream_api_key.get_secret_value(),
        http_client=http_client,
        # Retries belong to the generator's own policy, which knows whether a
        # token already reached the client; the SDK's would not.
        max_retries=0,
    )
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
        chat_request_handler(OpenAIProvider(client), NatsEventSink(bus), cancels),
    )
    running = asyncio.create_task(worker.run())
    log.info("generator ready", extra={"upstream": settings.upstream_base_url})
    try:
        await until_stopped(stop, running)
    finally:
        await control_sub.unsubscribe()
        worker.stop()
        await running
        await client.close()
        await bus.close()


def main() -> None:
    settings = GeneratorSettings()
    configure_logging("generator", settings.log_level)
    run_service(lambda stop: serve(settings, stop))


if __name__ == "__main__":
    main()
