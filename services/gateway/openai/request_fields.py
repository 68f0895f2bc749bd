"""What becomes of each Chat Completions request field: honoured, accepted, or refused.

Nothing a client sends is silently dropped where it would change the answer.
The list follows the official `openai` SDK's request type; a field outside it is
refused as OpenAI refuses it ("unrecognized request argument"). README's field
table says the same in prose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.gateway.http.errors import ApiError
from services.runtime.catalog import ModelEntry

__all__ = ["ACCEPTED_WITHOUT_EFFECT", "REFUSED", "check_fields"]

# Fields that tell OpenAI how to store, route or bill the call, never what to answer.
ACCEPTED_WITHOUT_EFFECT = frozenset(
    {
        "metadata",
        "service_tier",
        "store",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
    }
)

# Fields that would change the answer and that tokenbus does not carry (yet), with why.
REFUSED: Mapping[str, str] = {
    "n": "one choice per request",
    "audio": "audio output is not supported",
    "modalities": "only text output is supported",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "web search is not supported",
    "functions": "the legacy functions field is not supported; send tools",
    "function_call": "the legacy function_call field is not supported; send tool_choice",
    "verbosity": "verbosity is not supported",
    "moderation": "moderation settings are not supported",
}

# What a provider's adapter cannot express, so a request naming it is refused up front.
_PROVIDER_CANNOT: Mapping[str, frozenset[str]] = {
    "anthropic": frozenset(
        {
            "frequency_penalty",
            "presence_penalty",
            "logit_bias",
            "reasoning_effort",
            # Anthropic's API gives no log probabilities.
            "logprobs",
            "top_logprobs",
        }
    ),
}


def _refused(field: str, why: str) -> ApiError:
    return ApiError(400, f"{field}: {why}.", "unsupported_parameter", field)


def _is_harmless(field: str, value: Any) -> bool:
    """Values that ask for exactly what tokenbus does anyway."""
    if field == "modalities":
        return bool(value == ["text"])
    if field == "n":
        return bool(value == 1)
    return value is None


def _asks(field: str, value: Any) -> bool:
    """Whether a field asks the provider for something: `logprobs: false` asks for nothing."""
    return value is not None and not (field == "logprobs" and value is False)


def check_fields(sent: Mapping[str, Any], known: set[str], entry: ModelEntry) -> None:
    """400 unsupported_parameter naming the first field that could not be honoured."""
    for field, value in sent.items():
        if field in REFUSED and not _is_harmless(field, value):
            raise _refused(field, REFUSED[field])
        if field not in known and field not in REFUSED and field not in ACCEPTED_WITHOUT_EFFECT:
            raise _refused(field, "unrecognized request argument")
        if _asks(field, value) and field in _PROVIDER_CANNOT.get(entry.provider, frozenset()):
            raise _refused(field, f"the model '{entry.name}' ({entry.provider}) does not take it")
