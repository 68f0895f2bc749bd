"""A ModelProvider that answers a question it has answered before, in other words.

Off unless a catalog model sets `semantic_cache`. Only a request that is one user
question (after at most a system prompt), text only, without tools or logprobs,
at the configured temperature (0 by default) is looked up; what else shapes the
answer (the system prompt, the parameters) is hashed into the namespace, and the
tenant is part of the space's key, so a match is the same question, to the same
model, under the same instructions, for the same tenant. A hit is replayed like
the exact cache's, marked from_cache with its similarity, and costs zero upstream
tokens (the question's embedding is metered by the embedder, purpose embedding).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import orjson

from contracts import ChatRequest, utc_now
from contracts.semantic import SemanticEntry
from services.generator.cache import worth_keeping
from services.generator.ports import ModelProvider, StreamEnd, TextChunk
from services.generator.semantic.index import SpaceKey, decode_vector
from services.generator.semantic.metrics import (
    SEMANTIC_LOOKUP_SECONDS,
    SEMANTIC_LOOKUPS,
    SEMANTIC_SIMILARITY,
)
from services.generator.semantic.ports import QuestionEmbedder, SemanticLog
from services.generator.semantic.projection import SemanticProjection
from services.runtime.catalog import Catalog, ModelEntry, SemanticCacheConfig

__all__ = ["SemanticCachingProvider", "question_of"]

log = logging.getLogger("tokenbus.generator.semantic")

_PIECES = re.compile(r"\S+\s*|\s+")


def question_of(request: ChatRequest) -> tuple[str, str] | None:
    """(system prompt, question) of a single-question request; None for any other."""
    messages = request.messages
    system = ""
    if len(messages) == 2 and messages[0].role == "system":
        system, messages = messages[0].content, messages[1:]
    if len(messages) != 1 or messages[0].role != "user" or messages[0].images:
        return None
    if request.tools or request.params.logprobs or not messages[0].content.strip():
        return None
    return system, messages[0].content


def _namespace(request: ChatRequest, system: str) -> str:
    shape = {"system": system, "params": request.params.model_dump()}
    return hashlib.sha256(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


class SemanticCachingProvider:
    def __init__(
        self,
        inner: ModelProvider,
        catalog: Catalog,
        projection: SemanticProjection,
        embedder: QuestionEmbedder,
        entries: SemanticLog,
    ) -> None:
        self._inner = inner
        self._catalog = catalog
        self._projection = projection
        self._embedder = embedder
        self._entries = entries

    def _config(self, request: ChatRequest) -> tuple[SemanticCacheConfig, ModelEntry] | None:
        entry = self._catalog.get(request.model)
        if entry is None or entry.semantic_cache is None:
            return None
        if request.params.temperature != entry.semantic_cache.temperature:
            return None
        embedder = self._catalog.semantic_embedder(entry)
        return None if embedder is None else (entry.semantic_cache, embedder)

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        chosen = self._config(request)
        asked = question_of(request) if chosen is not None else None
        if chosen is None or asked is None:
            async for item in self._inner.stream(request):
                yield item
            return
        config, embedder = chosen
        system, question = asked
        key: SpaceKey = (request.tenant_id, request.model, _namespace(request, system),
                         embedder.name)  # fmt: skip
        vector = await self._embed(request, embedder.name, question)
        if vector is not None and not request.no_cache:
            hit = self._lookup(request, key, vector, config)
            if hit is not None:
                text, end = hit
                for piece in _PIECES.findall(text):
                    yield TextChunk(piece)
                yield end
                return
        parts: list[str] = []
        async for item in self._inner.stream(request):
            if isinstance(item, TextChunk):
                parts.append(item.text)
            elif vector is not None and worth_keeping(request, item):
                await self._store(request, key, vector, "".join(parts), item, config)
            yield item

    async def _embed(self, request: ChatRequest, model: str, question: str) -> str | None:
        try:
            return await self._embedder.embed(request, model, question)
        except Exception as exc:  # no embedder, a timeout: the model answers, uncached
            log.warning("semantic cache embed failed", extra={"error_type": type(exc).__name__})
            return None

    def _lookup(
        self, request: ChatRequest, key: SpaceKey, vector: str, config: SemanticCacheConfig
    ) -> tuple[str, StreamEnd] | None:
        started = time.perf_counter()
        hit = (
            self._projection.index.lookup(key, decode_vector(vector), utc_now())
            if self._projection.ready.is_set()
            else None
        )
        SEMANTIC_LOOKUP_SECONDS.labels(request.model).observe(time.perf_counter() - started)
        if hit is not None:
            SEMANTIC_SIMILARITY.labels(request.model).observe(hit.similarity)
        # Tenant and model are in the key; checked again so no bug can cross them.
        if (
            hit is None
            or hit.similarity < config.threshold
            or hit.entry.tenant_id != request.tenant_id
            or hit.entry.model != request.model
        ):
            SEMANTIC_LOOKUPS.labels(request.model, "miss").inc()
            return None
        SEMANTIC_LOOKUPS.labels(request.model, "hit").inc()
        end = StreamEnd(
            finish_reason=hit.entry.finish_reason,
            provider_model=hit.entry.provider_model,
            input_tokens=0,
            output_tokens=0,
            from_cache=True,
            similarity=round(hit.similarity, 4),
        )
        return hit.entry.answer, end

    async def _store(
        self,
        request: ChatRequest,
        key: SpaceKey,
        vector: str,
        text: str,
        end: StreamEnd,
        config: SemanticCacheConfig,
    ) -> None:
        entry = SemanticEntry(
            correlation_id=request.correlation_id,
            tenant_id=request.tenant_id,
            model=request.model,
            namespace=key[2],
            conversation_id=request.conversation_id,
            turn_id=request.turn_id,
            embedding_model=key[3],
            embedding=vector,
            answer=text,
            finish_reason=end.finish_reason,
            provider_model=end.provider_model,
            expires_at=utc_now() + timedelta(seconds=config.ttl_s),
        )
        try:
            await self._entries.append(entry)
        except Exception as exc:  # a cache that fails to store is only a later miss
            log.warning("semantic cache write failed", extra={"error_type": type(exc).__name__})
