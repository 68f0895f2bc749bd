"""Composition root of the titler: settings, bus, one durable consumer."""

from __future__ import annotations

from contracts import TurnCompleted
from contracts.subjects import TURNS_STREAM, turn_kind_filter
from services.runtime.consumer_service import serve_consumer
from services.runtime.lifecycle import run_service
from services.runtime.logs import configure_logging
from services.runtime.worker import WorkerConfig
from services.titler.config import TitlerSettings
from services.titler.handlers import on_turn_completed

DURABLE = "titler"


def main() -> None:
    settings = TitlerSettings()
    configure_logging("titler", settings.log_level)
    config = WorkerConfig(
        stream=TURNS_STREAM,
        subjects=(turn_kind_filter("completed"),),
        durable=DURABLE,
        max_in_flight=settings.max_in_flight,
    )
    run_service(
        lambda stop: serve_consumer(
            nats_url=settings.nats_url,
            config=config,
            decode=TurnCompleted.model_validate_json,
            make_handler=lambda bus: on_turn_completed,
            stop=stop,
        )
    )


if __name__ == "__main__":
    main()
