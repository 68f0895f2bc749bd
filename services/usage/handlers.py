"""Bus entrypoint: one usage event per finished (or cut) turn."""

from __future__ import annotations

import logging

from contracts import TurnUsage
from services.runtime.worker import Delivery

__all__ = ["on_usage"]

log = logging.getLogger("tokenbus.usage")


async def on_usage(event: TurnUsage, delivery: Delivery) -> None:
    # Validated by the worker against the contract; metering into JetStream KV
    # totals comes with the tenants-and-usage work.
    log.info(
        "usage received",
        extra={
            "turn_id": event.turn_id,
            "model": event.model,
            "input_tokens": event.input_tokens,
            "output_tokens": event.output_tokens,
            "estimated": event.estimated,
            "attempt": delivery.attempt,
        },
    )
