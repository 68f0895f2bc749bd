"""One ModelProvider per catalog entry, chosen by the request's public model name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx2
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from contracts import ChatRequest
from services.generator.adapters.anthropic_provider import AnthropicProvider
from services.generator.adapters.openai_provider import OpenAIProvider
from services.generator.errors import ProviderError
from services.generator.ports import ModelProvider, StreamEnd, TextChunk
from services.runtime.catalog import Catalog, ModelEntry

__all__ = ["ProviderRouter", "build_router"]


class ProviderRouter:
    def __init__(self, providers: Mapping[str, ModelProvider]) -> None:
        self._providers = providers

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        provider = self._providers.get(request.model)
        if provider is None:
            raise ProviderError("invalid_request", f"The model '{request.model}' is not served.")
        return provider.stream(request)


def _provider(
    entry: ModelEntry, env: Mapping[str, str], http: httpx2.AsyncClient, timeout_s: float
) -> ModelProvider:
    base_url = entry.resolved_base_url(env)
    key = env.get(entry.api_key_env, "") if entry.api_key_env else "not-needed"
    # Retries belong to the generator, which knows whether a token already
    # reached the client; the SDKs' own retries would not.
    if entry.provider == "anthropic":
        client = AsyncAnthropic(
            base_url=base_url, api_key=key, http_client=http, max_retries=0, timeout=timeout_s
        )
        return AnthropicProvider(client, entry.upstream_model, entry.max_output_tokens)
    openai_client = AsyncOpenAI(
        base_url=base_url, api_key=key, http_client=http, max_retries=0, timeout=timeout_s
    )
    return OpenAIProvider(openai_client, entry.upstream_model)


def build_router(
    catalog: Catalog, env: Mapping[str, str], http: httpx2.AsyncClient, timeout_s: float
) -> ProviderRouter:
    return ProviderRouter(
        {name: _provider(entry, env, http, timeout_s) for name, entry in catalog.models.items()}
    )
