"""How long a provider's stream may stay silent once its answer has begun.

Before the first text an upstream may rightly stay silent for long (a long prompt,
a reasoning model thinking): the HTTP read timeout (`upstream_timeout_s`) bounds
that wait. Once text flows, tokens come many a second, and a silence this long
is a stalled stream: it ends as a retryable `timeout` at once instead of holding
the client for the whole read timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

from services.generator.errors import ProviderError

__all__ = ["IdleBound", "stalled"]

T = TypeVar("T")


def stalled() -> ProviderError:
    return ProviderError("timeout", "The model stopped sending before it finished.", retryable=True)


class IdleBound:
    """Reads a stream's events; once `armed`, each read may wait `idle_s` at most.

    The bound is scoped to the read itself, never across the caller's own work
    between events (a slow publish downstream is not a silent upstream).
    """

    __slots__ = ("_idle_s", "armed")

    def __init__(self, idle_s: float | None) -> None:
        self._idle_s = idle_s
        self.armed = False

    async def read(self, events: AsyncIterator[T]) -> T:
        """The next event; StopAsyncIteration at the end, a `timeout` ProviderError if stalled."""
        if not self.armed or self._idle_s is None:
            return await anext(events)
        try:
            async with asyncio.timeout(self._idle_s):
                return await anext(events)
        except TimeoutError:
            raise stalled() from None
