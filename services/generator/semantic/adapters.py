"""The semantic cache's bus side: the embedder over request/reply, the entries stream."""

from __future__ import annotations

import hashlib

from contracts import ChatRequest, EmbeddingReply, EmbeddingRequest
from contracts.semantic import SemanticEntry
from contracts.subjects import EMBEDDING_REQUEST_SUBJECT, SEMANTIC_STREAM, semantic_entry_subject
from services.runtime.bus import Bus

__all__ = ["BusQuestionEmbedder", "EmbeddingFailed", "JetStreamSemanticLog"]


class EmbeddingFailed(Exception):
    """The embedder refused or failed: the lookup is a miss."""


class BusQuestionEmbedder:
    def __init__(self, bus: Bus, timeout_s: float) -> None:
        self._bus = bus
        self._timeout_s = timeout_s

    async def embed(self, request: ChatRequest, model: str, text: str) -> str:
        asked = EmbeddingRequest(
            correlation_id=request.correlation_id,
            # Metered under a turn of its own: the chat turn's usage stays the chat's.
            turn_id="sc" + hashlib.sha256(request.turn_id.encode()).hexdigest()[:40],
            tenant_id=request.tenant_id,
            user_id=request.user_id,
            key_id=request.key_id,
            model=model,
            inputs=(text,),
        )
        msg = await self._bus.nc.request(
            EMBEDDING_REQUEST_SUBJECT, asked.model_dump_json().encode(), timeout=self._timeout_s
        )
        reply = EmbeddingReply.model_validate_json(msg.data)
        if reply.failure is not None or not reply.vectors:
            raise EmbeddingFailed(reply.failure.code if reply.failure else "no vector")
        return reply.vectors[0]


class JetStreamSemanticLog:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def append(self, entry: SemanticEntry) -> None:
        await self._bus.js.publish(
            semantic_entry_subject(entry.tenant_id, entry.conversation_id),
            entry.model_dump_json().encode(),
            stream=SEMANTIC_STREAM,
            headers={"Nats-Msg-Id": entry.event_id},
        )
