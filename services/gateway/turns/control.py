"""Telling the generators about a turn's readers: cancel (now or after a grace), attach."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

from contracts.subjects import CANCEL_GRACE_HEADER, attach_subject, cancel_subject
from services.runtime.bus import Bus

__all__ = ["announce_attach", "request_cancel"]

log = logging.getLogger("tokenbus.gateway.control")

_background: set[asyncio.Task[None]] = set()


def request_cancel(bus: Bus, conversation_id: str, turn_id: str, grace_s: float = 0.0) -> None:
    """Ask for the turn to stop; with a grace, only if nobody re-attaches meanwhile.

    Synchronous on purpose: it runs in `finally` blocks of responses whose task
    is being cancelled, where an await would be cancelled too.
    """
    headers = {CANCEL_GRACE_HEADER: f"{grace_s:g}"} if grace_s > 0 else None
    _spawn(_publish(bus, cancel_subject(conversation_id, turn_id), headers))


def announce_attach(bus: Bus, conversation_id: str, turn_id: str) -> None:
    _spawn(_publish(bus, attach_subject(conversation_id, turn_id), None))


async def _publish(bus: Bus, subject: str, headers: dict[str, str] | None) -> None:
    try:
        await bus.nc.publish(subject, b"", headers=headers)
    except Exception as exc:
        log.warning("control message not sent", extra={"error_type": type(exc).__name__})


def _spawn(work: Coroutine[None, None, None]) -> None:
    # Keep a reference until done: the loop holds tasks only weakly.
    task = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)
