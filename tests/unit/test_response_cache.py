"""The exact-response cache at its Protocol seams: what is cached, what is replayed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from contracts import ChatMessage, ChatRequest, GenerationParams, utc_now
from services.generator.cache import CachedAnswer, CachingProvider, cache_key
from services.generator.ports import StreamEnd, TextChunk
from services.runtime.catalog import parse_catalog

CATALOG = parse_catalog(
    """
[models.cached]
provider = "openai"
upstream_model = "m"
cache_ttl_s = 60

[models.plain]
provider = "openai"
upstream_model = "m"
"""
)


class CountingModel:
    def __init__(self, finish: str = "stop", served_by: str | None = None) -> None:
        self.calls = 0
        self.finish = finish
        self.served_by = served_by

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        self.calls += 1
        yield TextChunk("Blue ")
        yield TextChunk("sky.")
        yield StreamEnd(self.finish, "m-2026", 12, 3, served_by=self.served_by)  # type: ignore[arg-type]


class DictCache:
    def __init__(self) -> None:
        self.entries: dict[str, CachedAnswer] = {}

    async def get(self, key: str) -> CachedAnswer | None:
        found = self.entries.get(key)
        return found if found is not None and found.expires_at > utc_now() else None

    async def put(self, key: str, answer: CachedAnswer) -> None:
        self.entries[key] = answer


def request(
    model: str = "cached", temperature: float | None = 0, tenant: str = "a", logprobs: bool = False
) -> ChatRequest:
    return ChatRequest(
        correlation_id="c",
        gateway_id="g",
        conversation_id="v",
        turn_id="t",
        tenant_id=tenant,
        model=model,
        messages=(ChatMessage(role="user", content="Colour of the sky?"),),
        params=GenerationParams(temperature=temperature, max_tokens=5, logprobs=logprobs or None),
    )


async def collect(provider: CachingProvider, req: ChatRequest) -> list[TextChunk | StreamEnd]:
    return [item async for item in provider.stream(req)]


async def test_a_repeat_at_temperature_zero_is_answered_from_the_cache() -> None:
    model, cache = CountingModel(), DictCache()
    provider = CachingProvider(model, CATALOG, cache)
    first = await collect(provider, request())
    again = await collect(provider, request())
    assert model.calls == 1
    text = "".join(i.text for i in again if isinstance(i, TextChunk))
    assert text == "Blue sky."
    end = again[-1]
    assert isinstance(end, StreamEnd)
    assert (end.input_tokens, end.output_tokens, end.from_cache) == (0, 0, True)
    assert isinstance(first[-1], StreamEnd)
    assert not first[-1].from_cache


async def test_what_is_never_cached() -> None:
    cases = [
        (CountingModel(), request(model="plain")),  # the catalog does not turn it on
        (CountingModel(), request(temperature=None)),  # provider default: sampling
        (CountingModel(), request(temperature=0.7)),
        (CountingModel(finish="cancelled"), request()),  # not a whole answer
        (CountingModel(served_by="other"), request()),  # a failover's answer
        (CountingModel(), request(logprobs=True)),  # the cache keeps no logprobs
    ]
    for model, req in cases:
        provider = CachingProvider(model, CATALOG, DictCache())
        await collect(provider, req)
        await collect(provider, req)
        assert model.calls == 2, req


async def test_tenants_never_share_answers_and_entries_expire() -> None:
    model, cache = CountingModel(), DictCache()
    provider = CachingProvider(model, CATALOG, cache)
    await collect(provider, request(tenant="a"))
    await collect(provider, request(tenant="b"))
    assert model.calls == 2
    assert cache_key(request(tenant="a")) != cache_key(request(tenant="b"))
    for key, answer in cache.entries.items():
        cache.entries[key] = answer.model_copy(update={"expires_at": utc_now() - timedelta(1)})
    await collect(provider, request(tenant="a"))
    assert model.calls == 3


async def test_a_broken_cache_is_a_miss_not_a_failed_turn() -> None:
    class Broken(DictCache):
        async def get(self, key: str) -> CachedAnswer | None:
            raise ConnectionError("kv down")

        async def put(self, key: str, answer: CachedAnswer) -> None:
            raise ConnectionError("kv down")

    model = CountingModel()
    items = await collect(CachingProvider(model, CATALOG, Broken()), request())
    assert model.calls == 1
    assert "".join(i.text for i in items if isinstance(i, TextChunk)) == "Blue sky."
