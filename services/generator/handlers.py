"""Bus entrypoint: a chat request from the work queue becomes one turn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from contracts import ChatRequest
from contracts.subjects import CANCEL_GRACE_HEADER, parse_control_subject
from services.generator.cancellation import CancelRegistry
from services.generator.ports import EventSink, ModelProvider, TurnHistory
from services.generator.service import generate_turn
from services.runtime.worker import Delivery, Handler

__all__ = ["chat_request_handler", "control_handler"]

log = logging.getLogger("tokenbus.generator")


def chat_request_handler(
    provider: ModelProvider,
    sink: EventSink,
    cancels: CancelRegistry,
    history: TurnHistory | None = None,
    structured_retries: int = 1,
    coalesce_window_s: float = 0.0,
) -> Handler[ChatRequest]:
    async def handle(request: ChatRequest, delivery: Delivery) -> None:
        if (live := cancels.task_of(request.turn_id)) is not None:
            # Redelivered while this replica still runs it (its beats were lost, say in a
            # leader election): starting it again would end the turn twice. This delivery
            # is acked once the running attempt is done, as that one is.
            log.info("redelivered while running here", extra={"turn_id": request.turn_id})
            await asyncio.wait({live})
            return
        # Which replica took which request: the line an operator (and the crash tests)
        # look for when a replica dies mid-turn, before its "model call finished".
        log.info(
            "turn started",
            extra={"turn_id": request.turn_id, "model": request.model, "attempt": delivery.attempt},
        )
        with cancels.running(request.turn_id):
            await generate_turn(
                request,
                delivery.attempt,
                provider,
                sink,
                was_cancelled=lambda: cancels.is_cancelled(request.turn_id),
                history=history,
                structured_retries=structured_retries,
                coalesce_window_s=coalesce_window_s,
            )

    return handle


def control_handler(cancels: CancelRegistry) -> Callable[[Msg], Awaitable[None]]:
    async def handle(msg: Msg) -> None:
        action, turn_id = parse_control_subject(msg.subject)
        if action == "attach":
            cancels.attached(turn_id)
        elif action == "cancel":
            grace = _grace(msg)
            if grace > 0:
                cancels.cancel_after(turn_id, grace)
            else:
                cancels.cancel(turn_id)

    return handle


def _grace(msg: Msg) -> float:
    try:
        return min(max(float((msg.headers or {}).get(CANCEL_GRACE_HEADER, 0)), 0.0), 300.0)
    except ValueError:
        return 0.0
