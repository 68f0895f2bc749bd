"""What the semantic cache needs from outside: an embedder and the stream it writes to."""

from __future__ import annotations

from typing import Protocol

from contracts import ChatRequest
from contracts.semantic import SemanticEntry

__all__ = ["QuestionEmbedder", "SemanticLog"]


class QuestionEmbedder(Protocol):
    async def embed(self, request: ChatRequest, model: str, text: str) -> str:
        """The question's vector (base64 float32), metered to the request's tenant."""
        ...


class SemanticLog(Protocol):
    async def append(self, entry: SemanticEntry) -> None:
        """Put an entry on the stream every replica's index follows."""
        ...
