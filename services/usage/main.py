"""Composition root of the usage: settings, bus, one durable consumer."""

from __future__ import annotations

import logging

from contracts import TurnUsage
from contracts.subjects import TURNS_STREAM, turn_kind_filter
from services.runtime.budgets import Budgets
from services.runtime.catalog import load_catalog
from services.runtime.consumer_service import plain_handler, serve_consumer
from services.runtime.lifecycle import run_service
from services.runtime.startup import catalog_or_exit, start_service
from services.runtime.worker import WorkerConfig
from services.usage.config import UsageSettings
from services.usage.counters import NatsUsageCounters
from services.usage.handlers import usage_handler

DURABLE = "usage"

log = logging.getLogger("tokenbus.usage")


def main() -> None:
    settings = UsageSettings()
    start_service("usage", settings)
    catalog = catalog_or_exit("usage", lambda: load_catalog(settings.catalog_path))  # prices
    config = WorkerConfig(
        stream=TURNS_STREAM,
        subjects=(turn_kind_filter("usage"),),
        durable=DURABLE,
        max_in_flight=settings.max_in_flight,
    )
    run_service(
        lambda stop: serve_consumer(
            nats_url=settings.nats_url,
            config=config,
            decode=TurnUsage.model_validate_json,
            handler_scope=plain_handler(
                lambda bus: usage_handler(catalog, NatsUsageCounters(bus.js), Budgets(bus.js))
            ),
            stop=stop,
            metrics_host=settings.metrics_host,
            metrics_port=settings.metrics_port,
        )
    )


if __name__ == "__main__":
    main()
