"""Both official SDKs' failures as one short reason code, safe to log (no provider text)."""

from __future__ import annotations

import anthropic
import httpx2
import openai

__all__ = ["SDK_ERRORS", "failure_reason"]

# What a call through either SDK can raise when the provider fails.
SDK_ERRORS = (openai.APIError, anthropic.APIError, httpx2.HTTPError)

_TIMEOUTS = (openai.APITimeoutError, anthropic.APITimeoutError, httpx2.TimeoutException)
_CONNECTION = (openai.APIConnectionError, anthropic.APIConnectionError, httpx2.TransportError)
_STATUS = (openai.APIStatusError, anthropic.APIStatusError)


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, _TIMEOUTS):
        return "timeout"
    if isinstance(exc, _CONNECTION):
        return "unreachable"
    if isinstance(exc, _STATUS):
        return f"status_{exc.status_code}"
    return "upstream_error"
