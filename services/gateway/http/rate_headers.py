"""x-ratelimit-* headers on every response to a key that has rate limits.

Generation requests set them when they are counted; every other response of the
key (a list, a 404, a budget 429) reads the current window without counting.
The caller is known only once the route's auth dependency ran, hence the check
at response start.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.caller import Caller

__all__ = ["RateHeadersMiddleware"]

log = logging.getLogger("tokenbus.gateway")

_MARK = b"x-ratelimit-limit-"


class RateHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_rate_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                caller = scope.get("state", {}).get("caller")
                if isinstance(caller, Caller) and _limited(caller):
                    headers = list(message.get("headers", []))
                    if not any(name.startswith(_MARK) for name, _ in headers):
                        headers += await _current(scope, caller)
                        message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_rate_headers)


def _limited(caller: Caller) -> bool:
    limits = caller.key_limits
    return limits.requests_per_minute is not None or limits.tokens_per_minute is not None


async def _current(scope: Scope, caller: Caller) -> list[tuple[bytes, bytes]]:
    try:
        status = await scope["app"].state.gateway.admission.rate_status(caller)
    except Exception as exc:  # headers are a courtesy: never fail the response for them
        log.warning("rate headers not read", extra={"error_type": type(exc).__name__})
        return []
    return [(k.encode(), v.encode()) for k, v in status.items()]
