"""A request's body lives as long as its route's handler, not as long as its response.

FastAPI reads a body parameter through Starlette's `Request`, which caches the bytes
and the parsed JSON on itself, and FastAPI holds that `Request` until the response
has been sent. For a stream that is the conversation's whole history, kept for as
long as the answer streams: with 20 KB of history, 91 KB of gateway memory per open
stream against 41 KB with none, and 40 KB either way with this route class
(`python -m bench.held --prompt-kb 20 --ramp-s 15`, bench/NOTES.md).
`HandlerScopedBodyRoute` (FastAPI's documented `route_class` hook) gives the handler
a `Request` of its own over the same scope and `receive`: what it caches goes when
the handler returns the response. Validation, errors and the API document are
FastAPI's, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

__all__ = ["HandlerScopedBodyRoute"]


class HandlerScopedBodyRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            # The Request FastAPI keeps for the response's life never reads the body.
            return await handler(Request(request.scope, request.receive))

        return handle
