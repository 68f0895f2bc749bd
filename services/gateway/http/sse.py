"""Server-Sent Events as every stream of the gateway writes them.

Framing, the keep-alive comment, OpenAI's `[DONE]` marker and the streaming
response with the headers that stop proxies buffering. Written by hand rather
than with sse-starlette, whose shutdown handling cuts the streams the drain
means to let finish (docs/decisions/0002-hand-written-sse.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi.responses import StreamingResponse

__all__ = ["DONE", "HEARTBEAT", "SSE_HEADERS", "event_stream", "frame", "json_frame"]

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx (and ingress-nginx) buffer responses unless told not to.
    "X-Accel-Buffering": "no",
}
# A comment line: clients ignore it, proxies see traffic and keep the connection.
HEARTBEAT = b": keep-alive\n\n"
# How OpenAI's streams end; an error ends one without it.
DONE = b"data: [DONE]\n\n"


def frame(data: bytes, event: str | None = None, event_id: str | None = None) -> bytes:
    """One event; `data` must hold no newline (compact JSON never does)."""
    head = f"id: {event_id}\n" if event_id else ""
    if event:
        head += f"event: {event}\n"
    return head.encode() + b"data: " + data + b"\n\n"


def json_frame(body: Any, event: str | None = None, event_id: str | None = None) -> bytes:
    return frame(orjson.dumps(body), event, event_id)


def event_stream(
    body: AsyncIterator[bytes], headers: dict[str, str] | None = None
) -> StreamingResponse:
    return StreamingResponse(
        body, media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})}
    )
