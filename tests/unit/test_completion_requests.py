"""A Chat Completions body (also a job's) becomes a bus request only if the model can take it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts import Limits
from services.gateway.caller import Caller
from services.gateway.config import GatewaySettings
from services.gateway.http.errors import ApiError
from services.gateway.jobs.models import NewJob
from services.gateway.openai.completions import to_chat_request
from services.gateway.openai.schema import ChatCompletionRequest
from services.runtime.catalog import parse_catalog

CATALOG = parse_catalog(
    """
[models.small]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "small"
context_window = 4096
max_output_tokens = 1024

[models.claude]
provider = "anthropic"
upstream_model = "claude"
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


@pytest.mark.parametrize("model", [ChatCompletionRequest, NewJob])
def test_logprobs_and_top_logprobs_reach_the_bus_request(
    model: type[ChatCompletionRequest],
) -> None:
    sent = {**body("hi", 5), "logprobs": True, "top_logprobs": 3}
    request = to_chat_request(model.model_validate(sent), SETTINGS, CATALOG, CALLER, "c1").request
    assert (request.params.logprobs, request.params.top_logprobs) == (True, 3)


def test_logprobs_false_asks_for_nothing() -> None:
    sent = {**body("hi", 5), "logprobs": False}
    request = to_chat_request(
        ChatCompletionRequest.model_validate(sent), SETTINGS, CATALOG, CALLER, "c1"
    ).request
    assert (request.params.logprobs, request.params.top_logprobs) == (None, None)
    assert "logprobs" not in request.params.model_dump_json()


@pytest.mark.parametrize(
    "fields",
    [
        {"top_logprobs": 2},
        {"logprobs": False, "top_logprobs": 2},
        {"logprobs": True, "top_logprobs": 21},
        {"logprobs": True, "top_logprobs": -1},
    ],
)
def test_top_logprobs_needs_logprobs_and_at_most_twenty(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as refused:
        ChatCompletionRequest.model_validate({**body("hi", 5), **fields})
    assert refused.value.errors()[0]["loc"] == ("top_logprobs",)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
    ],
)
def test_an_anthropic_model_refuses_logprobs_by_name(fields: dict[str, object], param: str) -> None:
    sent = ChatCompletionRequest.model_validate({**body("hi", 5), "model": "claude", **fields})
    with pytest.raises(ApiError) as refused:
        to_chat_request(sent, SETTINGS, CATALOG, CALLER, "c1")
    assert (refused.value.status, refused.value.code) == (400, "unsupported_parameter")
    assert refused.value.param == param


def test_an_anthropic_model_takes_logprobs_false() -> None:
    sent = {**body("hi", 5), "model": "claude", "logprobs": False}
    to_chat_request(ChatCompletionRequest.model_validate(sent), SETTINGS, CATALOG, CALLER, "c1")
