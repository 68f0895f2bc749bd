"""Requests and tokens per minute per API key, shared by every gateway replica.

Each key has one JetStream counter per measure and clock minute; the server adds
atomically and answers with the new total, so replicas need no coordination and
a burst of concurrent requests can never all see the same "one left".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.subjects import RATE_STREAM, rate_counter_subject

__all__ = ["RateLimiter", "RateWindow", "Throttled"]

_ACK_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class RateWindow:
    """Where a key stands in the current minute, for the x-ratelimit-* headers."""

    measure: str  # "requests" or "tokens"
    limit: int
    used: int
    reset_s: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class Throttled:
    window: RateWindow


def _window(now: datetime) -> tuple[int, float]:
    """The clock minute of `now` and the seconds until it ends."""
    epoch = now.timestamp()
    return int(epoch // 60), 60 - epoch % 60


class RateLimiter:
    def __init__(self, nc: Client, js: JetStreamContext) -> None:
        self._nc = nc
        self._js = js

    async def peek(
        self,
        key_id: str,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        now: datetime,
    ) -> list[RateWindow]:
        """Where the key stands in this minute, counting nothing."""
        minute, reset_s = _window(now)
        windows = []
        for measure, limit in (("requests", requests_per_minute), ("tokens", tokens_per_minute)):
            if limit is None:
                continue
            try:
                latest = await self._js.get_last_msg(
                    RATE_STREAM, rate_counter_subject(key_id, minute, measure), direct=True
                )
                used = int(orjson.loads(latest.data or b'{"val":"0"}')["val"])
            except NotFoundError:
                used = 0
            windows.append(RateWindow(measure, limit, used, reset_s))
        return windows

    async def _add(self, key_id: str, minute: int, measure: str, amount: int) -> int:
        reply = await self._nc.request(
            rate_counter_subject(key_id, minute, measure),
            b"",
            headers={"Nats-Incr": str(amount)},
            timeout=_ACK_TIMEOUT_S,
        )
        ack = orjson.loads(reply.data)
        if "error" in ack:
            raise RuntimeError(f"rate counter refused: {ack['error'].get('code')}")
        return int(ack["val"])

    async def take(
        self,
        key_id: str,
        requests_per_minute: int | None,
        tokens_per_minute: int | None,
        tokens: int,
        now: datetime,
    ) -> tuple[list[RateWindow], Throttled | None]:
        """Count one request of `tokens`; give it back if it does not fit."""
        minute, reset_s = _window(now)
        windows: list[RateWindow] = []
        taken: list[tuple[str, int]] = []
        for measure, limit, amount in (
            ("requests", requests_per_minute, 1),
            ("tokens", tokens_per_minute, tokens),
        ):
            if limit is None:
                continue
            used = await self._add(key_id, minute, measure, amount)
            taken.append((measure, amount))
            window = RateWindow(measure, limit, used, reset_s)
            if used > limit:
                # A refused request must not eat the budget of the ones that follow.
                for name, value in taken:
                    await self._add(key_id, minute, name, -value)
                return windows, Throttled(RateWindow(measure, limit, used - amount, reset_s))
            windows.append(window)
        return windows, None
