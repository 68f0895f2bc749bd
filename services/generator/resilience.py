"""Retries, circuit breakers and failover around the per-model providers.

Only what happens before the first token can be retried or moved to another
model: once a token has reached the client, a second attempt would repeat it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity import stop_after_delay as stop_after_seconds
from tenacity.wait import wait_exponential_jitter

from contracts import ChatRequest, utc_now
from services.generator.breaker import BreakerConfig, CircuitBreaker
from services.generator.errors import ProviderError
from services.generator.metrics import FAILOVERS, RETRIES
from services.generator.ports import ModelProvider, StreamEnd, TextChunk
from services.runtime.catalog import Catalog

__all__ = ["ResilientProvider", "RetryPolicy"]

log = logging.getLogger("tokenbus.generator.resilience")

# Failures that say the request itself is wrong: another model would refuse it too.
_NO_FAILOVER = {"invalid_request", "content_filtered"}


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    budget_s: float = 20.0
    initial_wait_s: float = 0.25
    max_wait_s: float = 5.0


Item = TextChunk | StreamEnd


class ResilientProvider:
    def __init__(
        self,
        providers: Mapping[str, ModelProvider],
        catalog: Catalog,
        policy: RetryPolicy = RetryPolicy(),
        breaker_config: BreakerConfig = BreakerConfig(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._providers = providers
        self._catalog = catalog
        self._policy = policy
        self._sleep = sleep
        self.breakers = {name: CircuitBreaker(name, breaker_config) for name in providers}
        self.retries = 0

    def stream(self, request: ChatRequest) -> AsyncIterator[Item]:
        return self._stream(request)

    async def _stream(self, request: ChatRequest) -> AsyncIterator[Item]:
        entry = self._catalog.get(request.model)
        if entry is None or request.model not in self._providers:
            raise ProviderError("invalid_request", f"The model '{request.model}' is not served.")
        failure: ProviderError | None = None
        for name in (request.model, *_able_fallbacks(self._catalog, request, entry.fallbacks)):
            breaker = self.breakers[name]
            if not breaker.allow():
                failure = ProviderError(
                    "upstream_unavailable", "The model is unavailable right now.", retryable=True
                )
                continue
            try:
                first, rest = await self._open(name, request, breaker)
            except ProviderError as exc:
                failure = exc
                if exc.code in _NO_FAILOVER:
                    raise
                log.warning("failing over", extra={"model": name, "code": exc.code})
                FAILOVERS.labels(name).inc()
                continue
            # Committed to this model from here on: no retry, no failover.
            try:
                async for item in _prepend(first, rest):
                    yield replace(item, served_by=name) if isinstance(item, StreamEnd) else item
            except ProviderError:
                breaker.record(False)
                raise
            return
        assert failure is not None
        raise failure

    async def _open(
        self, name: str, request: ChatRequest, breaker: CircuitBreaker
    ) -> tuple[Item, AsyncIterator[Item]]:
        """The model's first item (a token, or the end), retried while that is safe."""
        provider = self._providers[name]

        async def attempt() -> tuple[Item, AsyncIterator[Item]]:
            stream = aiter(provider.stream(request))
            try:
                first = await anext(stream)
            except ProviderError as exc:
                # A request the upstream rightly refused says nothing about its health.
                breaker.record(exc.code in _NO_FAILOVER)
                raise
            except StopAsyncIteration:
                breaker.record(False)
                raise ProviderError(
                    "upstream_error", "The model sent nothing.", retryable=True
                ) from None
            breaker.record(True)
            return first, stream

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._policy.attempts)
            | stop_after_seconds(self._budget(request)),
            wait=self._wait,
            retry=retry_if_exception(
                lambda e: isinstance(e, ProviderError) and e.retryable and breaker.allow()
            ),
            sleep=self._sleep,
            before_sleep=functools.partial(self._count_retry, name),
            reraise=True,
        )
        result: tuple[Item, AsyncIterator[Item]] = await retrying(attempt)
        return result

    def _budget(self, request: ChatRequest) -> float:
        budget = self._policy.budget_s
        if request.deadline_at is not None:
            budget = min(budget, (request.deadline_at - utc_now()).total_seconds() / 2)
        return max(budget, 0.0)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ProviderError) and exc.retry_after_s is not None:
            return min(exc.retry_after_s, self._policy.max_wait_s)
        backoff = wait_exponential_jitter(
            multiplier=self._policy.initial_wait_s, max=self._policy.max_wait_s
        )
        return float(backoff(state))

    def _count_retry(self, name: str, state: RetryCallState) -> None:
        self.retries += 1
        RETRIES.labels(name).inc()


def _able_fallbacks(
    catalog: Catalog, request: ChatRequest, fallbacks: tuple[str, ...]
) -> list[str]:
    """Fallbacks that can take the request: one blind to its images or tools would
    answer as if they were not there."""
    needs_vision = any(m.images for m in request.messages)
    able = []
    for name in fallbacks:
        entry = catalog.get(name)
        if entry is None or (needs_vision and not entry.vision):
            continue
        if request.tools and not entry.tools:
            continue
        able.append(name)
    return able


async def _prepend(first: Item, rest: AsyncIterator[Item]) -> AsyncIterator[Item]:
    yield first
    async for item in rest:
        yield item
