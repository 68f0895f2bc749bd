"""Every Chat Completions field is honoured, accepted without effect, or refused by name.

Structured output runs on the real local model (llama.cpp constrains its grammar
to the schema); what reaches a provider is checked on the scripted upstream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from jsonschema import validate
from openai import AsyncOpenAI

from services.gateway.openai.request_fields import REFUSED
from tests.e2e.test_conversations import sse
from tests.faults.upstream import FaultyUpstream
from tests.support import Stack

pytestmark = pytest.mark.e2e

CITY: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}
ASK = [{"role": "user", "content": "Name a city in France and its country, as JSON."}]


@pytest.fixture
async def sdk(stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    async with stack.openai() as client:
        yield client


async def test_a_json_schema_answer_from_the_real_model_parses_and_validates(
    sdk: AsyncOpenAI,
) -> None:
    answer = await sdk.chat.completions.create(
        model="smollm2-135m",
        messages=ASK,  # type: ignore[arg-type]
        max_tokens=60,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": CITY, "strict": True},
        },
    )
    content = answer.choices[0].message.content
    assert content is not None
    validate(json.loads(content), CITY)


async def test_a_streamed_json_object_answer_parses(sdk: AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="smollm2-135m",
        messages=ASK,  # type: ignore[arg-type]
        max_tokens=60,
        temperature=0,
        stream=True,
        response_format={"type": "json_object"},
    )
    text = ""
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    assert isinstance(json.loads(text), dict)


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=stack.auth, timeout=60
    ) as client:
        yield client


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "smollm2-135m", "messages": ASK, "max_tokens": 3, **fields}


REFUSALS = [
    ("audio", {"voice": "alloy", "format": "wav"}),
    ("modalities", ["text", "audio"]),
    ("prediction", {"type": "content", "content": "x"}),
    ("web_search_options", {}),
    ("functions", [{"name": "f"}]),
    ("function_call", "auto"),
    ("verbosity", "low"),
    ("moderation", {}),
    ("n", 2),
    ("top_k", 40),  # not an OpenAI field: unrecognized, as OpenAI answers
]


def test_every_refused_field_of_the_table_is_tested() -> None:
    assert set(REFUSED) <= {field for field, _ in REFUSALS}


@pytest.mark.parametrize(("field", "value"), REFUSALS)
async def test_a_field_that_cannot_be_honoured_is_refused_by_name(
    http: httpx.AsyncClient, field: str, value: Any
) -> None:
    response = await http.post("/v1/chat/completions", json=body(**{field: value}))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("unsupported_parameter", field)
    assert field in error["message"]


@pytest.mark.parametrize(
    "fields",
    [
        {"metadata": {"k": "v"}, "store": False, "service_tier": "auto", "user": "u1"},
        {"safety_identifier": "s", "prompt_cache_key": "k"},
        {"modalities": ["text"], "logprobs": False},
    ],
)
async def test_fields_that_do_not_change_the_answer_are_accepted(
    http: httpx.AsyncClient, fields: dict[str, Any]
) -> None:
    response = await http.post("/v1/chat/completions", json=body(**fields))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": CITY}}},
            "response_format.json_schema.name",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "nope"}},
                }
            },
            "response_format.json_schema.schema",
        ),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"frequency_penalty": 3}, "frequency_penalty"),
        ({"top_logprobs": 2}, "top_logprobs"),  # OpenAI too: only with logprobs true
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ],
)
async def test_a_bad_response_format_is_a_400_naming_it(
    http: httpx.AsyncClient, fields: dict[str, Any], param: str
) -> None:
    response = await http.post("/v1/chat/completions", json=body(**fields))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"presence_penalty": 0.5}, "presence_penalty"),
        # Anthropic's API has no log probabilities.
        ({"logprobs": True}, "logprobs"),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
    ],
)
async def test_a_field_the_anthropic_path_cannot_express_is_refused_for_its_models(
    http: httpx.AsyncClient, fields: dict[str, Any], param: str
) -> None:
    response = await http.post(
        "/v1/chat/completions", json=body(model="smollm2-135m-anthropic", **fields)
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("unsupported_parameter", param)
    # response_format is mapped for them: tests/e2e/test_anthropic_structured.py.


async def test_answer_shaping_fields_reach_an_openai_compatible_provider_as_sent(
    scripted_stack: Stack, upstream: FaultyUpstream
) -> None:
    shaping = {
        "frequency_penalty": 0.5,
        "presence_penalty": -0.5,
        "logit_bias": {"50256": -100},
        "reasoning_effort": "low",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": CITY, "strict": True},
        },
    }
    # An answer that fits: one that did not would be asked again, then refused.
    upstream.play({"kind": "text", "text": '{"city": "Paris", "country": "France"}'})
    async with httpx.AsyncClient(
        base_url=scripted_stack.gateway_url, headers=scripted_stack.auth, timeout=30
    ) as client:
        response = await client.post(
            "/v1/chat/completions", json={**body(model="scripted"), **shaping}
        )
    assert response.status_code == 200, response.text
    sent = upstream.bodies[-1]
    assert {k: sent[k] for k in shaping} == shaping


async def test_a_conversation_turn_can_ask_for_json_that_fits_a_schema(
    http: httpx.AsyncClient,
) -> None:
    conversation_id = (await http.post("/v1/conversations", json={"title": "json"})).json()["id"]
    shape = {"type": "json_schema", "json_schema": {"name": "city", "schema": CITY}}
    text = ""
    async with http.stream(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        json={
            "content": ASK[0]["content"],
            "max_tokens": 60,
            "temperature": 0,
            "response_format": shape,
        },
    ) as response:
        assert response.status_code == 200
        async for event in sse(response):
            if event.event == "delta":
                text += event.data["text"]
            if event.event in {"done", "error"}:
                break
    validate(json.loads(text), CITY)
