"""Bus entrypoint: decode an embedding request, answer it, reply."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from nats.aio.msg import Msg
from pydantic import ValidationError

from contracts import EmbeddingFailure, EmbeddingReply, EmbeddingRequest
from services.embedder.ports import EmbeddingModel, UsageSink
from services.embedder.service import answer
from services.runtime.catalog import Catalog

__all__ = ["embedding_handler"]

log = logging.getLogger("tokenbus.embedder")


def embedding_handler(
    catalog: Catalog,
    models: Mapping[str, EmbeddingModel],
    usage: UsageSink,
    slots: asyncio.Semaphore,
) -> Callable[[Msg], Awaitable[None]]:
    async def on_request(msg: Msg) -> None:
        try:
            request = EmbeddingRequest.model_validate_json(msg.data)
        except ValidationError:
            reply = EmbeddingReply(
                correlation_id="unknown",
                failure=EmbeddingFailure(
                    code="invalid_request", message="Not an embedding request."
                ),
            )
        else:
            async with slots:
                try:
                    reply = await answer(request, catalog, models, usage)
                except Exception as exc:  # the caller gets a failure, never silence
                    log.warning("embedding failed", extra={"error_type": type(exc).__name__})
                    reply = EmbeddingReply(
                        correlation_id=request.correlation_id,
                        failure=EmbeddingFailure(
                            code="upstream_error", message="The embedding could not be made."
                        ),
                    )
        if msg.reply:
            await msg.respond(reply.model_dump_json().encode())

    return on_request
