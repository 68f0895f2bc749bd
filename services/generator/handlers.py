"""Bus entrypoint: a chat request from the work queue becomes one turn."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from contracts import ChatRequest
from contracts.subjects import turn_id_from_cancel_subject
from services.generator.cancellation import CancelRegistry
from services.generator.ports import EventSink, ModelProvider
from services.generator.service import generate_turn
from services.runtime.worker import Delivery, Handler

__all__ = ["cancel_handler", "chat_request_handler"]


def chat_request_handler(
    provider: ModelProvider, sink: EventSink, cancels: CancelRegistry
) -> Handler[ChatRequest]:
    async def handle(request: ChatRequest, delivery: Delivery) -> None:
        with cancels.running(request.turn_id):
            await generate_turn(
                request,
                delivery.attempt,
                provider,
                sink,
                was_cancelled=lambda: cancels.is_cancelled(request.turn_id),
            )

    return handle


def cancel_handler(cancels: CancelRegistry) -> Callable[[Msg], Awaitable[None]]:
    async def handle(msg: Msg) -> None:
        cancels.cancel(turn_id_from_cancel_subject(msg.subject))

    return handle
