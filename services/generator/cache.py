"""Exact-response cache: the same temperature-0 request, answered again without the model.

Off unless a catalog entry sets `cache_ttl_s`. A request is cacheable only at
temperature 0 (an explicit 0: a provider's default temperature samples). The key
hashes the tenant (one tenant's answers are never another's), the model and
everything that shapes the answer. Only a complete answer (stop or length) is
kept; a hit is replayed as a normal stream of chunks and reports zero upstream
tokens, marked `from_cache`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Protocol

import orjson
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict

from contracts import ChatRequest, FinishReason, utc_now
from services.generator.ports import ModelProvider, StreamEnd, TextChunk
from services.runtime.catalog import Catalog

__all__ = [
    "CachedAnswer",
    "CachingProvider",
    "KvResponseCache",
    "ResponseCache",
    "cache_key",
    "worth_keeping",
]

log = logging.getLogger("tokenbus.generator.cache")

# Replayed in word-sized pieces, as a model would stream it.
_PIECES = re.compile(r"\S+\s*|\s+")


class CachedAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    finish_reason: FinishReason
    provider_model: str
    expires_at: datetime


class ResponseCache(Protocol):
    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, answer: CachedAnswer) -> None: ...


class KvResponseCache:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def get(self, key: str) -> CachedAnswer | None:
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        answer = CachedAnswer.model_validate_json(entry.value)
        return answer if answer.expires_at > utc_now() else None

    async def put(self, key: str, answer: CachedAnswer) -> None:
        await self._kv.put(key, answer.model_dump_json().encode())


def cache_key(request: ChatRequest) -> str:
    shape = {
        "tenant": request.tenant_id,
        "model": request.model,
        "messages": [m.model_dump() for m in request.messages],
        "params": request.params.model_dump(),
    }
    return hashlib.sha256(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)).hexdigest()


def worth_keeping(request: ChatRequest, end: StreamEnd) -> bool:
    """A whole answer from the model asked for: not a failover's, not a cut one, and not
    itself from a cache (a semantic hit is not this question's own answer)."""
    return (
        end.finish_reason in ("stop", "length")
        and end.served_by in (None, request.model)
        and not end.from_cache
    )


class CachingProvider:
    """A ModelProvider in front of another that answers repeated requests from the cache."""

    def __init__(self, inner: ModelProvider, catalog: Catalog, cache: ResponseCache) -> None:
        self._inner = inner
        self._catalog = catalog
        self._cache = cache

    def _ttl_s(self, request: ChatRequest) -> float | None:
        # With tools the answer may be calls, and logprobs are asked for the tokens: the
        # cache keeps neither, so ask the model.
        if request.params.temperature != 0 or request.tools or request.params.logprobs:
            return None
        if request.no_cache:  # Cache-Control: no-cache: the model answers, and is not kept
            return None
        entry = self._catalog.get(request.model)
        return None if entry is None else entry.cache_ttl_s

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        ttl_s = self._ttl_s(request)
        if ttl_s is None:
            async for item in self._inner.stream(request):
                yield item
            return
        key = cache_key(request)
        hit = await self._lookup(key)
        if hit is not None:
            for piece in _PIECES.findall(hit.text):
                yield TextChunk(piece)
            yield StreamEnd(
                finish_reason=hit.finish_reason,
                provider_model=hit.provider_model,
                input_tokens=0,
                output_tokens=0,
                from_cache=True,
            )
            return
        parts: list[str] = []
        async for item in self._inner.stream(request):
            if isinstance(item, TextChunk):
                parts.append(item.text)
            elif worth_keeping(request, item):
                await self._store(key, "".join(parts), item, ttl_s)
            yield item

    async def _lookup(self, key: str) -> CachedAnswer | None:
        try:
            return await self._cache.get(key)
        except Exception as exc:  # a cache that fails is a miss, never a failed turn
            log.warning("cache read failed", extra={"error_type": type(exc).__name__})
            return None

    async def _store(self, key: str, text: str, end: StreamEnd, ttl_s: float) -> None:
        answer = CachedAnswer(
            text=text,
            finish_reason=end.finish_reason,
            provider_model=end.provider_model,
            expires_at=utc_now() + timedelta(seconds=ttl_s),
        )
        try:
            await self._cache.put(key, answer)
        except Exception as exc:
            log.warning("cache write failed", extra={"error_type": type(exc).__name__})
