"""Server-Sent Events as every stream of the gateway writes them.

Framing, the keep-alive comment, OpenAI's `[DONE]` marker and the streaming
response with the headers that stop proxies buffering. Written by hand rather
than with sse-starlette, whose shutdown handling cuts the streams the drain
means to let finish (docs/decisions/0002-hand-written-sse.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = [
    "DONE",
    "HEARTBEAT",
    "SSE_HEADERS",
    "EventStreamResponse",
    "event_stream",
    "frame",
    "json_frame",
]

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


class EventStreamResponse(Response):
    """A stream of SSE bytes, sent from the request's own task until the body ends or
    the client leaves.

    Starlette's StreamingResponse, under uvicorn's HTTP (ASGI spec 2.3, where a write
    to a closed connection is dropped silently), runs the body in a task group beside
    a task that listens for the disconnect: two tasks, a cancel scope and their frames
    for every open stream. Here the body goes out from the task already running the
    request, and one pending `receive()` cancels that task when the client leaves: the
    body iterator's `finally` (which cancels the turn) runs at once, as before.
    """

    media_type = "text/event-stream"

    def __init__(self, body: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> None:
        self.body_iterator = body
        self.status_code = 200
        self.background = None
        self.init_headers({**SSE_HEADERS, **(headers or {})})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None, "an ASGI app runs in a task"
        sending = True
        left = False

        def client_left(_: object) -> None:
            nonlocal left
            # A leaving noticed after the body ended is nobody's business.
            if sending:
                left = True
                task.cancel()

        watch = asyncio.ensure_future(_disconnected(receive))
        watch.add_done_callback(client_left)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not left:
                raise  # cancelled from outside (shutdown): not ours to swallow
            task.uncancel()
        finally:
            sending = False
            watch.cancel()
            # Left while a write waited on a slow client, the body sits at a `yield`:
            # close it now, not when it is collected, so the turn is cancelled at once.
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()


async def _disconnected(receive: Receive) -> None:
    # The request body is read before a stream starts: what comes next is the leaving.
    while (await receive())["type"] != "http.disconnect":
        pass


def event_stream(
    body: AsyncIterator[bytes], headers: dict[str, str] | None = None
) -> EventStreamResponse:
    return EventStreamResponse(body, headers)
