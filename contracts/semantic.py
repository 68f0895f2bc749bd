"""The semantic cache on the bus: entries, and tombstones that take them back.

The stream is the cache: each replica that looks answers up keeps an in-memory
index built from it (from the start at boot, then live), so every replica
answers alike and a restart loses nothing. An entry is one answered question
of one tenant; a tombstone removes a conversation's entries, or all of a
tenant's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.base import BusMessage, Token
from contracts.events import FinishReason

__all__ = ["SemanticEntry", "SemanticTombstone"]


class SemanticEntry(BusMessage):
    type: Literal["semantic.entry"] = "semantic.entry"
    tenant_id: Token
    model: str = Field(description="The catalog chat model that answered")
    namespace: str = Field(
        description="sha256 of what else shapes the answer (system prompt, parameters)"
    )
    conversation_id: Token
    turn_id: Token
    embedding_model: str
    embedding: str = Field(description="The question's vector: base64 of little-endian float32")
    answer: str
    finish_reason: FinishReason
    provider_model: str
    expires_at: datetime


class SemanticTombstone(BusMessage):
    type: Literal["semantic.tombstone"] = "semantic.tombstone"
    tenant_id: Token
    conversation_id: Token | None = Field(
        default=None, description="None: every entry of the tenant"
    )
