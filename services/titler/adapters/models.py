"""A TitleModel for a catalog entry, on its provider's official SDK."""

from __future__ import annotations

from collections.abc import Mapping

import httpx2
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from services.runtime.catalog import ModelEntry
from services.titler.adapters.anthropic_model import AnthropicTitleModel
from services.titler.adapters.openai_model import OpenAITitleModel
from services.titler.adapters.title_call import TitleCall
from services.titler.ports import TitleModel

__all__ = ["build_title_model"]


def build_title_model(
    entry: ModelEntry,
    env: Mapping[str, str],
    http: httpx2.AsyncClient,
    *,
    max_tokens: int,
    temperature: float,
    timeout_s: float,
    reasoning_max_tokens: int,
) -> TitleModel:
    base_url = entry.resolved_base_url(env)
    key = env.get(entry.api_key_env, "") if entry.api_key_env else "not-needed"
    # A reasoning model spends most of its budget thinking before the few words of a title.
    wanted = reasoning_max_tokens if entry.reasoning else max_tokens
    call = TitleCall(
        name=entry.name,
        upstream_model=entry.upstream_model,
        max_tokens=min(wanted, entry.max_output_tokens),
        temperature=temperature,
        timeout_s=timeout_s,
        reasoning=entry.reasoning,
    )
    # No SDK retries: a failed call goes straight to the fallback title, so a
    # provider outage delays a title by one timeout at most, never several.
    if entry.provider == "anthropic":
        return AnthropicTitleModel(
            AsyncAnthropic(
                base_url=base_url, api_key=key, http_client=http, max_retries=0, timeout=timeout_s
            ),
            call,
        )
    return OpenAITitleModel(
        AsyncOpenAI(
            base_url=base_url, api_key=key, http_client=http, max_retries=0, timeout=timeout_s
        ),
        call,
    )
