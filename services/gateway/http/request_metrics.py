"""Counts, times and logs every HTTP request by route template and status; tracks SSE streams.

The log line is the gateway's access log (uvicorn's is off): one JSON line per request,
with the request id and trace id the log formatter adds, and never a path's ids.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.metrics import ACTIVE_STREAMS, HTTP_DURATION, HTTP_REQUESTS

__all__ = ["HttpMetricsMiddleware", "route_template"]

log = logging.getLogger("tokenbus.gateway.access")

# Probes and scrapes come every few seconds: counted, but logged only at debug.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Paths no route matched (scanners, typos): one label value, not one per path.
UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    """The matched route's template; the router leaves it in the scope it was given."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED


class HttpMetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): streaming responses pass through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        status = 500  # unless a response starts: an exception becomes a 500 further out
        stream_route: str | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status, stream_route
            if message["type"] == "http.response.start":
                status = message["status"]
                if _is_event_stream(message.get("headers", [])):
                    stream_route = route_template(scope)
                    ACTIVE_STREAMS.labels(stream_route).inc()
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            if stream_route is not None:
                ACTIVE_STREAMS.labels(stream_route).dec()
            route = route_template(scope)
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(elapsed)
            log.log(
                logging.DEBUG if route in _QUIET_ROUTES else logging.INFO,
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                },
            )


def _is_event_stream(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name.lower() == b"content-type" and value.startswith(b"text/event-stream")
        for name, value in headers
    )
