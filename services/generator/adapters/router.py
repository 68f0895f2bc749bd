"""One ModelProvider per catalog entry, each on its provider's official SDK."""

from __future__ import annotations

from collections.abc import Mapping

import httpx2
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from services.generator.adapters.anthropic_provider import AnthropicProvider
from services.generator.adapters.openai_provider import OpenAIProvider
from services.generator.ports import ModelProvider
from services.runtime.catalog import Catalog, ModelEntry

__all__ = ["build_providers"]


def _provider(
    entry: ModelEntry,
    env: Mapping[str, str],
    http: httpx2.AsyncClient,
    timeout_s: float,
    idle_s: float | None,
) -> ModelProvider:
    base_url = entry.resolved_base_url(env)
    key = env.get(entry.api_key_env, "") if entry.api_key_env else "not-needed"
    # Retries belong to the generator, which knows whether a token already
    # reached the client; the SDKs' own retries would not.
    if entry.provider == "anthropic":
        client = AsyncAnthropic(
            base_url=base_url, api_key=key, http_client=http, max_retries=0, timeout=timeout_s
        )
        return AnthropicProvider(
            client, entry.upstream_model, entry.max_output_tokens, idle_timeout_s=idle_s
        )
    openai_client = AsyncOpenAI(
        base_url=base_url, api_key=key, http_client=http, max_retries=0, timeout=timeout_s
    )
    return OpenAIProvider(
        openai_client, entry.upstream_model, reasoning=entry.reasoning, idle_timeout_s=idle_s
    )


def build_providers(
    catalog: Catalog,
    env: Mapping[str, str],
    http: httpx2.AsyncClient,
    timeout_s: float,
    idle_timeout_s: float | None = None,
) -> dict[str, ModelProvider]:
    """`timeout_s` bounds every read; `idle_timeout_s`, when shorter, each read once text flows."""
    # No shorter bound, no per-chunk timer: the read timeout already is the idle bound.
    idle_s = idle_timeout_s if idle_timeout_s is not None and idle_timeout_s < timeout_s else None
    return {
        name: _provider(entry, env, http, timeout_s, idle_s)
        for name, entry in catalog.models.items()
        if entry.role != "embedding"  # the embedder's, not a chat provider
    }
