"""What the embedder needs from outside: models that embed, and where usage goes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from contracts import TurnUsage

__all__ = ["Embedded", "EmbeddingModel", "UsageSink"]


@dataclass(frozen=True, slots=True)
class Embedded:
    vectors: list[list[float]]
    input_tokens: int
    provider_model: str


class EmbeddingModel(Protocol):
    async def count_tokens(self, texts: list[str]) -> list[int] | None:
        """Each text's exact token count, or None when only the provider knows it."""
        ...

    async def embed(self, texts: list[str], dimensions: int | None) -> Embedded: ...


class UsageSink(Protocol):
    async def publish(self, usage: TurnUsage) -> None:
        """Put one usage event on the bus for the usage service (idempotent by event id)."""
        ...
