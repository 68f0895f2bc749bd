"""Both official SDKs' failures, mapped to tokenbus's stable codes.

The openai and anthropic SDKs share one error hierarchy shape (status errors
with `status_code`, connection and timeout errors) on top of httpx2, so one
table serves both. The provider's own text is never passed on.
"""

from __future__ import annotations

import anthropic
import httpx2
import openai

from services.generator.adapters.idle_bound import stalled
from services.generator.errors import ProviderError

__all__ = ["translate_sdk_error"]

_TIMEOUTS = (openai.APITimeoutError, anthropic.APITimeoutError, httpx2.TimeoutException)
_CONNECTION = (openai.APIConnectionError, anthropic.APIConnectionError, httpx2.TransportError)
_STATUS = (openai.APIStatusError, anthropic.APIStatusError)


def translate_sdk_error(exc: Exception, *, mid_stream: bool = False) -> ProviderError:
    # A read that timed out is a timeout in every phase: before the response, after
    # its headers or between two chunks (httpx's read timeout bounds each read).
    if isinstance(exc, _TIMEOUTS):
        if mid_stream:
            return stalled()
        return ProviderError("timeout", "The model did not answer in time.", retryable=True)
    if mid_stream and isinstance(exc, (*_CONNECTION, httpx2.HTTPError)):
        return ProviderError("upstream_error", "The model's stream broke off.", retryable=True)
    if isinstance(exc, _CONNECTION):
        return ProviderError("upstream_unavailable", "The model is unreachable.", retryable=True)
    if isinstance(exc, _STATUS):
        error = _by_status(exc.status_code, str(exc))
        error.retry_after_s = _retry_after(exc.response.headers.get("retry-after"))
        return error
    return ProviderError("upstream_error", "The model failed.", retryable=True)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; the HTTP-date form is rare upstream and ignored."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _by_status(status: int, text: str) -> ProviderError:
    if status == 429:
        return ProviderError(
            "rate_limited", "The model is rate limited; try again soon.", retryable=True
        )
    if status in (400, 413, 422):
        lowered = text.lower()
        if "context" in lowered and any(w in lowered for w in ("length", "window", "exceed")):
            return ProviderError(
                "context_length_exceeded", "The conversation is too long for this model."
            )
        return ProviderError("invalid_request", "The model rejected the request.")
    if status in (401, 403):
        return ProviderError("upstream_error", "The gateway could not authenticate upstream.")
    if status == 404:
        return ProviderError("upstream_error", "The upstream model does not exist.")
    if status in (408, 504):
        return ProviderError("timeout", "The model did not answer in time.", retryable=True)
    if status >= 500:
        return ProviderError("upstream_unavailable", "The model failed; try again.", retryable=True)
    return ProviderError("upstream_error", "The model failed.")
