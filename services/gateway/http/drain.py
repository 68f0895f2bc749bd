"""Graceful drain: on SIGTERM, stop taking work, let streams finish, end the rest resumably.

The order, from the signal:
1. readiness answers 503 and new API requests get 503 `gateway_draining`
   (load balancers and Kubernetes stop sending traffic here);
2. after `drain_delay_s` uvicorn closes its listener and waits for the open
   connections;
3. after `drain_grace_s` every stream still open is ended on purpose: a
   conversation stream with a `reconnect` event (the client resumes on another
   replica with Last-Event-ID; the turn keeps running meanwhile), an OpenAI
   stream with a final retryable `gateway_draining` error (a retry with the same
   Idempotency-Key attaches to the turn). Nothing is cut without a word.

It is an ASGI middleware so that no route pays for it beyond two wrapped callables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from services.gateway.http.errors import (
    ANTHROPIC_ROUTES,
    anthropic_error_body,
    error_body,
    error_body_for,
)
from services.gateway.http.sse import json_frame

__all__ = ["Drain", "DrainMiddleware"]

log = logging.getLogger("tokenbus.gateway.drain")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_ALWAYS_SERVED = ("/healthz", "/readyz", "/metrics")
_RETRY_AFTER = {"retry-after": "1"}
_DRAINING_MESSAGE = "This gateway is restarting; retry (with the same Idempotency-Key) or resume."


class Drain:
    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.started = False
        # A future per open request, not an asyncio.Event: an Event carries a deque of
        # its own (~760 B) and needs a task to be waited on beside `receive`.
        self._cuts: set[asyncio.Future[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def begin(self) -> None:
        if self.started:
            return
        self.started = True
        log.info("draining", extra={"open_requests": len(self._cuts), "grace_s": self.grace_s})
        self._timer = asyncio.get_running_loop().call_later(self.grace_s, self.cut_all)

    def cut_all(self) -> None:
        if self._cuts:
            log.info("ending open streams resumably", extra={"streams": len(self._cuts)})
        for cut in self._cuts:
            if not cut.done():
                cut.set_result(None)

    def track(self) -> asyncio.Future[None]:
        cut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._cuts.add(cut)
        return cut

    def forget(self, cut: asyncio.Future[None]) -> None:
        self._cuts.discard(cut)


def _farewell(path: str) -> bytes:
    if path.startswith("/v1/conversations"):
        return json_frame({"reason": "gateway_draining"}, "reconnect")
    if path.startswith(ANTHROPIC_ROUTES):
        return json_frame(anthropic_error_body(_DRAINING_MESSAGE, 503, "gateway_draining"), "error")
    return json_frame(error_body(_DRAINING_MESSAGE, 503, "gateway_draining"))


class DrainMiddleware:
    def __init__(self, app: App, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.drain.started and not path.startswith(_ALWAYS_SERVED):
            await _refuse(path, send)
            return
        cut = self.drain.track()
        state = {"started": False, "streaming": False, "ended": False}

        async def guarded_send(message: Message) -> None:
            if state["ended"]:
                return  # we already ended this response for the drain
            if message["type"] == "http.response.start":
                state["started"] = True
                headers = dict(message.get("headers", []))
                state["streaming"] = headers.get(b"content-type", b"").startswith(
                    b"text/event-stream"
                )
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                state["ended"] = True
            await send(message)

        async def cut_short_receive() -> Message:
            # Starlette listens here for the client leaving; on the cut, the app is
            # told so and winds the turn down as it would for a client that left.
            receiving = asyncio.ensure_future(receive())
            either: set[asyncio.Future[Any]] = {receiving, cut}
            try:
                done, _ = await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:
                receiving.cancel()
                raise
            if receiving in done:
                return receiving.result()
            receiving.cancel()
            await _end(send, state, path)
            return {"type": "http.disconnect"}

        try:
            await self.app(scope, cut_short_receive, guarded_send)
        finally:
            self.drain.forget(cut)


async def _end(send: Send, state: dict[str, bool], path: str) -> None:
    if state["ended"]:
        return
    state["ended"] = True
    with contextlib.suppress(Exception):
        if state["streaming"]:
            await send({"type": "http.response.body", "body": _farewell(path), "more_body": False})
        elif not state["started"]:
            await _refuse(path, send)


async def _refuse(path: str, send: Send) -> None:
    body = orjson.dumps(error_body_for(path, _DRAINING_MESSAGE, 503, "gateway_draining"))
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.encode(), v.encode()) for k, v in _RETRY_AFTER.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
