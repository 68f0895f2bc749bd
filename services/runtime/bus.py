"""Connecting to NATS and JetStream."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential,
)

__all__ = ["Bus", "ElectionTolerantJetStream", "connect", "server_urls"]

log = logging.getLogger("tokenbus.bus")

# Longer than a stream leader election on a cluster (seconds), short enough to fail.
PUBLISH_RETRY_WINDOW_S = 15.0
_TRANSIENT = (NoStreamResponseError, ServiceUnavailableError, nats.errors.TimeoutError)


# A server that stops answering (hung, or its host gone) is noticed after
# _PING_INTERVAL_S * _MAX_OUTSTANDING_PINGS, not nats-py's default of minutes.
_PING_INTERVAL_S = 2.0
_MAX_OUTSTANDING_PINGS = 2


class ElectionTolerantJetStream(JetStreamContext):
    """A JetStream context whose acked publishes ride out a leader election.

    While a clustered stream elects a new leader (a node died) or the client
    reconnects to another node, a publish gets no responders, a 503 or no ack in
    time. A publish with a `Nats-Msg-Id` is retried for a while: if an earlier try
    did land, the stream drops the retry as a duplicate, so the retry is safe.
    Without an id (e.g. KV compare-and-set) the error is the caller's to handle.
    """

    def __init__(
        self,
        conn: Client,
        timeout: float = 5.0,
        retry_window_s: float = PUBLISH_RETRY_WINDOW_S,
    ) -> None:
        super().__init__(conn, timeout=timeout)
        self._retry_window_s = retry_window_s

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,  # noqa: ASYNC109 (nats-py's signature)
        stream: str | None = None,
        headers: dict[str, Any] | None = None,
        msg_ttl: float | None = None,
    ) -> api.PubAck:
        if not headers or "Nats-Msg-Id" not in headers:
            return await super().publish(subject, payload, timeout, stream, headers, msg_ttl)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_TRANSIENT),
            # Never a pause that would end past the window: then the error is the caller's.
            stop=stop_before_delay(self._retry_window_s),
            wait=wait_exponential(multiplier=0.1, max=1.0),
            before_sleep=_log_retry,
            reraise=True,
        )
        return await retrying(super().publish, subject, payload, timeout, stream, headers, msg_ttl)


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.info("publish retried", extra={"error_type": type(error).__name__})


class Bus:
    """One NATS connection and its JetStream context, owned by a composition root."""

    def __init__(self, nc: Client, js: JetStreamContext) -> None:
        self.nc = nc
        self.js = js
        self.closing = False
        self._reconnect_listeners: list[Callable[[], None]] = []

    def on_reconnect(self, listener: Callable[[], None]) -> None:
        """Call `listener` after each reconnect (core subscriptions missed what came meanwhile)."""
        self._reconnect_listeners.append(listener)

    def reconnected(self) -> None:
        for listener in self._reconnect_listeners:
            listener()

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def close(self) -> None:
        """Drain so in-flight publishes and acks reach the server before exit.

        Without a server (reconnecting, or it never came back) there is nothing to
        drain to: the connection is closed at once. Closing never raises, whatever
        state the connection is in: shutdown goes on.
        """
        self.closing = True
        nc = self.nc
        if nc.is_closed:
            return
        if nc.is_connected:
            try:
                await nc.drain()
                return
            except Exception as exc:  # closing anyway; a failed drain must not block shutdown
                log.warning("bus drain failed", extra={"error_type": type(exc).__name__})
        if not nc.is_connected:
            # What was buffered for the server cannot reach it, and nats-py 2.16 would
            # write it into the dead socket while closing (RuntimeError under uvloop,
            # and the rest of its cleanup skipped).
            nc._pending = []
            nc._pending_data_size = 0
        try:
            await nc.close()
        except Exception as exc:
            log.warning("bus close failed", extra={"error_type": type(exc).__name__})


def server_urls(url: str) -> list[str]:
    """`nats://a:4222,nats://b:4222` (a cluster, as NATS tools write it) -> one URL per server."""
    return [part.strip() for part in url.split(",") if part.strip()]


async def connect(url: str, name: str, request_timeout_s: float | None = None) -> Bus:
    """Connect to one server or a cluster (comma-separated URLs); reconnect forever.

    `request_timeout_s` bounds every JetStream and KV call, publish retries included:
    a caller that must answer a client quickly (the gateway) gives its own bound.
    """
    bus: Bus | None = None

    async def on_error(exc: Exception) -> None:
        log.warning("bus error", extra={"error_type": type(exc).__name__})

    async def on_disconnected() -> None:
        if bus is None or not bus.closing:  # a drain at shutdown is no news
            log.warning("bus disconnected")

    async def on_reconnected() -> None:
        log.info("bus reconnected")
        if bus is not None:
            bus.reconnected()

    nc = await nats.connect(
        # nats-py takes a list: a comma-separated string is refused as one bad URL.
        server_urls(url),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        ping_interval=_PING_INTERVAL_S,
        max_outstanding_pings=_MAX_OUTSTANDING_PINGS,
    )
    js = (
        ElectionTolerantJetStream(nc)
        if request_timeout_s is None
        else ElectionTolerantJetStream(
            nc, timeout=request_timeout_s, retry_window_s=request_timeout_s
        )
    )
    bus = Bus(nc, js)
    return bus
