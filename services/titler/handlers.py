"""Bus entrypoint: a completed turn may be the first exchange of a conversation."""

from __future__ import annotations

import logging

from contracts import TurnCompleted
from services.runtime.worker import Delivery

__all__ = ["on_turn_completed"]

log = logging.getLogger("tokenbus.titler")


async def on_turn_completed(event: TurnCompleted, delivery: Delivery) -> None:
    # Validated by the worker against the contract; naming with the utility
    # model comes with the tenants-and-titles work.
    log.info(
        "turn completed",
        extra={"turn_id": event.turn_id, "finish_reason": event.finish_reason},
    )
