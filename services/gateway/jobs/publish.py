"""Putting a chat request on the bus with nobody relaying its events live."""

from __future__ import annotations

import logging

from contracts import ChatRequest
from contracts.subjects import CHAT_REQUEST_SUBJECT
from services.gateway.errors import ApiError
from services.runtime.bus import Bus

__all__ = ["bus_unavailable", "publish_request"]

log = logging.getLogger("tokenbus.gateway.jobs")

_PUBLISH_TIMEOUT_S = 5.0


def bus_unavailable() -> ApiError:
    return ApiError(
        503,
        "The gateway cannot queue requests right now; try again shortly.",
        "bus_unavailable",
        headers={"Retry-After": "1"},
    )


async def publish_request(bus: Bus, request: ChatRequest) -> None:
    """Publish like start_turn does, without opening a relay inbox; 503 if the bus refuses."""
    try:
        await bus.js.publish(
            CHAT_REQUEST_SUBJECT,
            request.model_dump_json().encode(),
            timeout=_PUBLISH_TIMEOUT_S,
            headers={"Nats-Msg-Id": request.turn_id},
        )
    except Exception as exc:
        log.warning("publish failed", extra={"error_type": type(exc).__name__})
        raise bus_unavailable() from None
