"""Upstream failures become stable codes, and the provider's own words never pass through."""

from __future__ import annotations

import anthropic
import httpx2
import openai
import pytest

from services.generator.adapters.sdk_errors import translate_sdk_error

SECRET = "sk-live-SECRET org-internal host-10-1-2-3"


def status_error(
    cls: type[openai.APIStatusError] | type[anthropic.APIStatusError], status: int
) -> Exception:
    request = httpx2.Request("POST", "https://upstream.example/v1/chat/completions")
    response = httpx2.Response(status, request=request, json={"error": {"message": SECRET}})
    return cls(SECRET, response=response, body={"error": {"message": SECRET}})


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        (status_error(openai.RateLimitError, 429), "rate_limited", True),
        (status_error(openai.InternalServerError, 503), "upstream_unavailable", True),
        (status_error(openai.BadRequestError, 400), "invalid_request", False),
        (status_error(openai.AuthenticationError, 401), "upstream_error", False),
        (status_error(openai.NotFoundError, 404), "upstream_error", False),
        (httpx2.ConnectError(SECRET), "upstream_unavailable", True),
        (status_error(anthropic.RateLimitError, 429), "rate_limited", True),
        (status_error(anthropic.InternalServerError, 529), "upstream_unavailable", True),
        (status_error(anthropic.BadRequestError, 400), "invalid_request", False),
        (status_error(anthropic.PermissionDeniedError, 403), "upstream_error", False),
        (httpx2.ReadTimeout(SECRET), "timeout", True),
    ],
)
def test_maps_upstream_failures_to_stable_codes(
    error: Exception, code: str, retryable: bool
) -> None:
    translated = translate_sdk_error(error)
    assert (translated.code, translated.retryable) == (code, retryable)
    assert "SECRET" not in translated.message


def test_context_overflow_is_named() -> None:
    request = httpx2.Request("POST", "https://u/v1/chat/completions")
    message = "This model's maximum context length is 8192 tokens; you requested 9000"
    response = httpx2.Response(400, request=request)
    error = openai.BadRequestError(message, response=response, body=None)
    assert translate_sdk_error(error).code == "context_length_exceeded"


def test_a_transport_error_mid_stream_is_a_broken_stream() -> None:
    translated = translate_sdk_error(httpx2.RemoteProtocolError(SECRET), mid_stream=True)
    assert translated.code == "upstream_error"
    assert "SECRET" not in translated.message


@pytest.mark.parametrize(
    "error",
    [httpx2.ReadTimeout(SECRET), openai.APITimeoutError(httpx2.Request("POST", "https://u"))],
)
def test_a_read_that_times_out_mid_stream_is_a_retryable_timeout(error: Exception) -> None:
    translated = translate_sdk_error(error, mid_stream=True)
    assert (translated.code, translated.retryable) == ("timeout", True)
    assert "SECRET" not in translated.message
