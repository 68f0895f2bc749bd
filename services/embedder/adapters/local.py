"""The bundled all-MiniLM-L6-v2 as an EmbeddingModel: numpy work off the event loop."""

from __future__ import annotations

import asyncio

from services.embedder.adapters.minilm import MiniLM
from services.embedder.ports import Embedded

__all__ = ["LocalEmbeddingModel"]


class LocalEmbeddingModel:
    def __init__(self, model: MiniLM, name: str) -> None:
        self._model = model
        self._name = name

    async def count_tokens(self, texts: list[str]) -> list[int] | None:
        return self._model.count_tokens(texts)

    async def embed(self, texts: list[str], dimensions: int | None) -> Embedded:
        # In a thread: BLAS releases the GIL, so the bus connection stays answered.
        vectors = await asyncio.to_thread(self._model.embed, texts)
        tokens = sum(min(n, self._model.max_tokens) for n in self._model.count_tokens(texts))
        return Embedded(vectors=vectors.tolist(), input_tokens=tokens, provider_model=self._name)
