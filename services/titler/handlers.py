"""Bus entrypoint: a conversation's first exchange is recorded, name it."""

from __future__ import annotations

from contracts import TitleRequest
from services.runtime.worker import Delivery, Handler, Retry
from services.titler.service import ClaimContended, Titler

__all__ = ["title_request_handler"]


def title_request_handler(titler: Titler) -> Handler[TitleRequest]:
    async def on_title_request(request: TitleRequest, delivery: Delivery) -> None:
        try:
            await titler.handle(request, delivery.stream_sequence)
        except ClaimContended as exc:
            raise Retry(str(exc), delay=1.0) from None

    return on_title_request
