"""X-Request-ID: taken from the client when well formed, else made here; always answered.

The id becomes the turn's `correlation_id` on the bus and tags every log line of the
request. One that breaks the pattern (or is too long) is replaced, not refused: a
bad tracing header must not fail a request; the response header says which id counts.
"""

from __future__ import annotations

import re

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts import new_id
from services.runtime.logs import bind_correlation_id

__all__ = ["REQUEST_ID_HEADER", "RequestIdMiddleware"]

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER = REQUEST_ID_HEADER.lower().encode()
_VALID = re.compile(rb"[A-Za-z0-9_-]{1,64}")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = [value for name, value in scope["headers"] if name == _HEADER]
        if len(given) == 1 and _VALID.fullmatch(given[0]):
            request_id = given[0].decode()
        else:
            request_id = new_id()
            # Changed in place, not copied: the 500 handler, which Starlette runs
            # outside every middleware, reads the id from this same scope.
            scope["headers"] = [
                *((n, v) for n, v in scope["headers"] if n != _HEADER),
                (_HEADER, request_id.encode()),
            ]
        trace.get_current_span().set_attribute("tokenbus.correlation_id", request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(n, v) for n, v in message.get("headers", []) if n.lower() != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, request_id.encode())]}
            await send(message)

        # Not reset afterwards: each request runs in a task of its own, and the 500
        # handler's log line, written after this returns, should carry the id too.
        bind_correlation_id(request_id)
        await self.app(scope, receive, send_with_id)
