"""Bus entrypoint: a chat request from the work queue becomes one turn."""

from __future__ import annotations

from contracts import ChatRequest
from services.generator.ports import EventSink, ModelProvider
from services.generator.service import generate_turn
from services.runtime.worker import Delivery, Handler

__all__ = ["chat_request_handler"]


def chat_request_handler(provider: ModelProvider, sink: EventSink) -> Handler[ChatRequest]:
    async def handle(request: ChatRequest, delivery: Delivery) -> None:
        await generate_turn(request, delivery.attempt, provider, sink)

    return handle
