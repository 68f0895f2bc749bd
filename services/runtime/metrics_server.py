"""GET /metrics for the services that serve no HTTP otherwise (generator, titler, usage).

A few lines of asyncio rather than prometheus_client's threaded server: the scrape
runs on the service's own event loop, so collectors that read live state (circuit
breakers) never race it, and the server closes with the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

__all__ = ["MetricsServer"]

log = logging.getLogger("tokenbus.metrics")

_MAX_HEAD_BYTES = 8192
_READ_TIMEOUT_S = 5.0


class MetricsServer:
    """Prometheus' text format at `/metrics`; anything else is a 404."""

    def __init__(self, server: asyncio.Server | None, registry: CollectorRegistry) -> None:
        self._server = server
        self._registry = registry

    @property
    def port(self) -> int | None:
        """Where it listens; None when disabled (port 0 in the settings)."""
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    @classmethod
    async def start(
        cls, host: str, port: int, registry: CollectorRegistry = REGISTRY
    ) -> MetricsServer:
        """Listen on host:port; port 0 means no endpoint at all."""
        endpoint = cls(None, registry)
        if port == 0:
            return endpoint
        try:
            endpoint._server = await asyncio.start_server(endpoint._answer, host, port)
        except OSError as exc:
            # Metrics are not worth a crash loop: the service runs on, unscraped, and says so.
            log.warning(
                "metrics endpoint not started",
                extra={"host": host, "port": port, "error_type": type(exc).__name__},
            )
            return endpoint
        log.info("metrics endpoint ready", extra={"host": host, "port": port})
        return endpoint

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            method, target = _request_line(head)
            if method in {"GET", "HEAD"} and target.split("?", 1)[0] == "/metrics":
                body = generate_latest(self._registry)
                writer.write(_response(200, CONTENT_TYPE_LATEST, body, with_body=method == "GET"))
            else:
                writer.write(_response(404, "text/plain; charset=utf-8", b"not found\n"))
            await writer.drain()
        except (
            TimeoutError,
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass  # a scanner, or a client that gave up: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _request_line(head: bytes) -> tuple[str, str]:
    first = head[:_MAX_HEAD_BYTES].split(b"\r\n", 1)[0].decode("latin-1")
    parts = first.split(" ")
    if len(parts) != 3:
        return "", ""
    return parts[0], parts[1]


def _response(status: int, content_type: str, body: bytes, with_body: bool = True) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head + (body if with_body else b"")
