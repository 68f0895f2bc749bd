"""A Chat Completions body (also a job's) becomes a bus request only if the model can take it."""

from __future__ import annotations

import pytest

from contracts import Limits
from services.gateway.caller import Caller
from services.gateway.completions import to_chat_request
from services.gateway.config import GatewaySettings
from services.gateway.errors import ApiError
from services.gateway.jobs.models import NewJob
from services.gateway.openai_schema import ChatCompletionRequest
from services.runtime.catalog import parse_catalog

CATALOG = parse_catalog(
    """
[models.small]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "small"
context_window = 4096
max_output_tokens = 1024
"""
)
CALLER = Caller(tenant_id="t", user_id="u", key_id="k", key_limits=Limits())
SETTINGS = GatewaySettings()
PROMPT = "word " * 2_480  # about 3,100 tokens by the gateway's estimate


def body(content: str, max_tokens: int | None) -> dict[str, object]:
    return {
        "model": "small",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
    }


@pytest.mark.parametrize("model", [ChatCompletionRequest, NewJob])
def test_a_prompt_that_fits_with_its_answer_becomes_a_request(
    model: type[ChatCompletionRequest],
) -> None:
    request = to_chat_request(
        model.model_validate(body(PROMPT, 900)), SETTINGS, CATALOG, CALLER, "c1"
    ).request
    assert request.params.max_tokens == 900
    assert request.messages[0].content == PROMPT


@pytest.mark.parametrize("model", [ChatCompletionRequest, NewJob])
@pytest.mark.parametrize(("content", "max_tokens"), [(PROMPT, 1024), ("x" * 20_000, None)])
def test_a_prompt_that_cannot_fit_is_context_length_exceeded(
    model: type[ChatCompletionRequest], content: str, max_tokens: int | None
) -> None:
    with pytest.raises(ApiError) as refused:
        to_chat_request(
            model.model_validate(body(content, max_tokens)), SETTINGS, CATALOG, CALLER, "c1"
        )
    assert (refused.value.status, refused.value.code) == (400, "context_length_exceeded")
    assert refused.value.param == "messages"
