"""Bad input gets the documented code in OpenAI's error shape, and nothing reaches the bus.

The gateway app runs in this process on a real nats-server; no model is needed,
since every request here is refused before it would be queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.runtime.catalog import parse_catalog
from tests.integration.in_process import CATALOG, Gateway, running_gateway

MESSAGES = [{"role": "user", "content": "Name a river."}]


@pytest.fixture(scope="module")
async def gateway(nats_url: str) -> AsyncIterator[Gateway]:
    # Were a request queued after all, nobody would answer it: fail in seconds, not minutes.
    async with running_gateway(nats_url, request_deadline_s=1) as running:
        yield running


def assert_error(response: httpx.Response, status: int, code: str, param: str | None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == (code, param)
    assert error["type"] == "invalid_request_error"


NESTED = b'{"model": "small", "messages": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
UNREADABLE_BODIES = [
    pytest.param(NESTED, id="nested-10000-deep"),
    pytest.param(b'{"model": "sm\xff\xfell", "messages": []}', id="invalid-utf8-in-a-string"),
    pytest.param(b"\xc3\x28\x80", id="invalid-utf8"),
]


@pytest.mark.parametrize("body", UNREADABLE_BODIES)
@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/jobs", "/v1/conversations"])
async def test_a_body_that_cannot_be_read_as_json_is_400_invalid_json(
    gateway: Gateway, route: str, body: bytes
) -> None:
    before = await gateway.requests_published()
    response = await gateway.http.post(
        route, content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "invalid_json", None)
    assert await gateway.requests_published() == before


@pytest.mark.parametrize(
    "last_event_id", ["x" * 201, "a" * 64 + ":1:" + "9" * 200, "x" * 8000, "nope"]
)
async def test_a_last_event_id_this_api_never_sent_is_400_however_long(
    gateway: Gateway, last_event_id: str
) -> None:
    created = await gateway.http.post("/v1/conversations", json={})
    stream = f"/v1/conversations/{created.json()['id']}/stream"

    by_header = await gateway.http.get(stream, headers={"Last-Event-ID": last_event_id})
    by_query = await gateway.http.get(stream, params={"last_event_id": last_event_id})

    for response in (by_header, by_query):
        assert_error(response, 400, "invalid_last_event_id", "Last-Event-ID")


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/jobs"])
@pytest.mark.parametrize("stream", [{}, {"stream": False}])
async def test_stream_options_without_stream_true_is_refused_as_openai_does(
    gateway: Gateway, route: str, stream: dict[str, bool]
) -> None:
    before = await gateway.requests_published()
    body = {
        "model": "small",
        "messages": MESSAGES,
        "stream_options": {"include_usage": True},
        **stream,
    }
    response = await gateway.http.post(route, json=body)
    assert_error(response, 400, "invalid_value", "stream_options")
    assert await gateway.requests_published() == before


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/jobs"])
@pytest.mark.parametrize(
    ("content", "max_tokens"),
    [
        pytest.param("x" * 990_000, None, id="990-KB-message"),
        # About 3,100 tokens of prompt: it fits 4,096, but not with 1,024 for the answer.
        pytest.param("word " * 2_480, 1024, id="fits-only-without-the-answer"),
    ],
)
async def test_a_prompt_that_cannot_fit_the_context_is_refused_before_it_is_queued(
    gateway: Gateway, route: str, content: str, max_tokens: int | None
) -> None:
    before = await gateway.requests_published()
    body: dict[str, object] = {
        "model": "small",
        "messages": [{"role": "user", "content": content}],
    }
    if max_tokens:
        body["max_tokens"] = max_tokens
    response = await gateway.http.post(route, json=body)
    assert_error(response, 400, "context_length_exceeded", "messages")
    assert "4096 tokens" in response.json()["error"]["message"]
    assert await gateway.requests_published() == before


OPEN_OBJECT = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/jobs"])
async def test_a_strict_schema_outside_strict_modes_subset_is_refused_naming_the_part(
    gateway: Gateway, route: str
) -> None:
    before = await gateway.requests_published()
    nested = {**OPEN_OBJECT, "additionalProperties": False, "properties": {"city": OPEN_OBJECT}}
    strict_format = {"name": "city", "strict": True, "schema": nested}
    response = await gateway.http.post(
        route,
        json={
            "model": "small",
            "messages": MESSAGES,
            "response_format": {"type": "json_schema", "json_schema": strict_format},
        },
    )
    assert_error(response, 400, "invalid_value", "response_format.json_schema")
    assert "properties.city: an object needs" in response.json()["error"]["message"]
    assert await gateway.requests_published() == before


async def test_a_request_bigger_than_a_bus_message_is_413_not_a_retryable_503(
    nats_url: str,
) -> None:
    roomy = parse_catalog(
        CATALOG
        + """
[models.roomy]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "roomy"
context_window = 2000000
"""
    )
    async with running_gateway(nats_url, roomy) as gateway:
        before = await gateway.requests_published()
        # Under the body limit and the context, over NATS's 1 MB max_payload.
        text = "word " * 260_000
        response = await gateway.http.post(
            "/v1/chat/completions",
            json={"model": "roomy", "messages": [{"role": "user", "content": text}]},
        )
        assert_error(response, 413, "request_too_large", "messages")
        assert "at most 1048576" in response.json()["error"]["message"]
        assert await gateway.requests_published() == before
