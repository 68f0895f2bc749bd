"""Bus entrypoint: one usage event per turn that ended (zeros when it generated nothing)."""

from __future__ import annotations

import logging

from contracts import TurnUsage
from services.runtime.catalog import Catalog
from services.runtime.worker import Delivery, Handler
from services.usage.ports import Reservations, UsageCounters
from services.usage.service import meter

__all__ = ["usage_handler"]

log = logging.getLogger("tokenbus.usage")


def usage_handler(
    catalog: Catalog, counters: UsageCounters, reservations: Reservations
) -> Handler[TurnUsage]:
    async def on_usage(event: TurnUsage, delivery: Delivery) -> None:
        await meter(event, catalog, counters, reservations)

    return on_usage
