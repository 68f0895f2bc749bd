"""OpenAI's (and any OpenAI-compatible server's) /embeddings, through the official SDK."""

from __future__ import annotations

import openai
from openai import AsyncOpenAI

from services.embedder.errors import EmbeddingError
from services.embedder.ports import Embedded

__all__ = ["OpenAIEmbeddingModel"]


class OpenAIEmbeddingModel:
    def __init__(self, client: AsyncOpenAI, upstream_model: str) -> None:
        self._client = client
        self._model = upstream_model

    async def count_tokens(self, texts: list[str]) -> list[int] | None:
        return None  # the provider counts (and refuses what is over its limit)

    async def embed(self, texts: list[str], dimensions: int | None) -> Embedded:
        try:
            if dimensions is None:
                answer = await self._client.embeddings.create(
                    model=self._model, input=texts, encoding_format="float"
                )
            else:
                answer = await self._client.embeddings.create(
                    model=self._model, input=texts, encoding_format="float", dimensions=dimensions
                )
        except openai.BadRequestError:
            # The provider's own text stays out of the answer: it can name internals.
            raise EmbeddingError(
                "invalid_request", "The provider refused this input for embedding.", "input"
            ) from None
        except openai.RateLimitError:
            raise EmbeddingError("rate_limited", "The provider is rate limiting; retry.") from None
        except (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError):
            raise EmbeddingError(
                "upstream_unavailable", "The embedding provider did not answer; retry."
            ) from None
        except openai.APIError:
            raise EmbeddingError("upstream_error", "The embedding provider failed.") from None
        ordered = sorted(answer.data, key=lambda item: item.index)
        return Embedded(
            vectors=[list(item.embedding) for item in ordered],
            input_tokens=answer.usage.prompt_tokens if answer.usage else 0,
            provider_model=answer.model or self._model,
        )
