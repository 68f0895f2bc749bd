"""Retries, breakers and failover, with scripted providers at the ModelProvider seam."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from contracts import ChatMessage, ChatRequest, utc_now
from services.generator.breaker import BreakerConfig
from services.generator.errors import ProviderError
from services.generator.ports import StreamEnd, TextChunk
from services.generator.resilience import ResilientProvider, RetryPolicy
from services.runtime.catalog import parse_catalog

CATALOG = parse_catalog(
    """
[models.primary]
provider = "openai-compatible"
base_url = "http://primary/v1"
upstream_model = "p"
fallbacks = ["backup"]

[models.backup]
provider = "openai-compatible"
base_url = "http://backup/v1"
upstream_model = "b"
"""
)

OK = (TextChunk("hi"), StreamEnd("stop", "x", 1, 1))


class Scripted:
    """Each call plays the next script: items to yield, or an error to raise first."""

    def __init__(self, *scripts: tuple[TextChunk | StreamEnd | ProviderError, ...]) -> None:
        self.scripts = list(scripts)
        self.calls = 0

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        self.calls += 1
        script = self.scripts.pop(0) if self.scripts else OK
        return self._play(script)

    async def _play(
        self, script: tuple[TextChunk | StreamEnd | ProviderError, ...]
    ) -> AsyncIterator[TextChunk | StreamEnd]:
        for item in script:
            if isinstance(item, ProviderError):
                raise item
            yield item


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def request() -> ChatRequest:
    return ChatRequest(
        correlation_id="c",
        gateway_id="g",
        conversation_id="v",
        turn_id="t",
        model="primary",
        messages=(ChatMessage(role="user", content="hi"),),
        deadline_at=utc_now() + timedelta(seconds=120),
    )


def resilient(
    primary: Scripted, backup: Scripted, sleeps: Sleeps, min_calls: int = 100
) -> ResilientProvider:
    return ResilientProvider(
        {"primary": primary, "backup": backup},
        CATALOG,
        RetryPolicy(attempts=3),
        BreakerConfig(min_calls=min_calls, failure_rate=0.5, cooldown_s=60),
        sleep=sleeps,
    )


async def collect(provider: ResilientProvider) -> list[TextChunk | StreamEnd]:
    return [item async for item in provider.stream(request())]


async def test_a_429_is_retried_after_the_time_the_upstream_asked_for() -> None:
    limited = ProviderError("rate_limited", "slow", retryable=True, retry_after_s=1.5)
    primary, backup, sleeps = Scripted((limited,), OK), Scripted(), Sleeps()
    items = await collect(resilient(primary, backup, sleeps))
    assert primary.calls == 2
    assert backup.calls == 0
    assert sleeps.waits == [1.5]
    end = items[-1]
    assert isinstance(end, StreamEnd)
    assert end.served_by == "primary"


async def test_a_400_is_neither_retried_nor_failed_over() -> None:
    bad = ProviderError("invalid_request", "no")
    primary, backup, sleeps = Scripted((bad,)), Scripted(), Sleeps()
    with pytest.raises(ProviderError) as raised:
        await collect(resilient(primary, backup, sleeps))
    assert raised.value.code == "invalid_request"
    assert (primary.calls, backup.calls, sleeps.waits) == (1, 0, [])


async def test_when_retries_run_out_the_turn_moves_to_the_fallback() -> None:
    down = ProviderError("upstream_unavailable", "down", retryable=True)
    primary, backup, sleeps = Scripted((down,), (down,), (down,)), Scripted(), Sleeps()
    items = await collect(resilient(primary, backup, sleeps))
    assert primary.calls == 3
    assert backup.calls == 1
    end = items[-1]
    assert isinstance(end, StreamEnd)
    assert end.served_by == "backup"


async def test_an_open_breaker_sends_the_next_turn_to_the_fallback_without_waiting() -> None:
    down = ProviderError("upstream_unavailable", "down", retryable=True)
    primary, backup, sleeps = Scripted(*[(down,)] * 10), Scripted(), Sleeps()
    provider = resilient(primary, backup, sleeps, min_calls=3)
    await collect(provider)  # three failures open the primary's breaker
    assert provider.breakers["primary"].state == "open"
    calls, waits = primary.calls, len(sleeps.waits)

    items = await collect(provider)
    assert primary.calls == calls  # not even tried
    assert len(sleeps.waits) == waits  # no waiting either
    end = items[-1]
    assert isinstance(end, StreamEnd)
    assert end.served_by == "backup"


async def test_a_failure_after_the_first_token_is_never_retried() -> None:
    broken = ProviderError("upstream_error", "cut", retryable=True)
    primary, backup, sleeps = Scripted((TextChunk("a"), broken)), Scripted(), Sleeps()
    got: list[TextChunk | StreamEnd] = []

    async def consume() -> None:
        async for item in resilient(primary, backup, sleeps).stream(request()):
            got.append(item)

    with pytest.raises(ProviderError):
        await consume()
    assert got == [TextChunk("a")]
    assert (primary.calls, backup.calls) == (1, 0)


async def test_refused_requests_do_not_count_against_the_upstreams_health() -> None:
    bad = ProviderError("invalid_request", "no")
    primary, backup, sleeps = Scripted(*[(bad,)] * 5), Scripted(), Sleeps()
    provider = resilient(primary, backup, sleeps, min_calls=3)
    for _ in range(5):
        with pytest.raises(ProviderError):
            await collect(provider)
    assert provider.breakers["primary"].state == "closed"
