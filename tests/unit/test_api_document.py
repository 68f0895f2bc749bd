"""/openapi.json lists the statuses the gateway answers; /docs loads no CDN unless enabled.

Neither needs the bus: the app is built but its lifespan never runs.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.gateway.config import GatewaySettings
from services.gateway.http.api_document import ROUTE_ERRORS
from services.gateway.http.errors import (
    AnthropicErrorBody,
    ErrorBody,
    anthropic_error_body,
    error_body,
)
from services.gateway.main import create_app
from services.runtime.catalog import parse_catalog

CATALOG = parse_catalog(
    """
[models.small]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "small"
"""
)
ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorBody"}
ANTHROPIC_ERROR_SCHEMA = {"$ref": "#/components/schemas/AnthropicErrorBody"}


def app(**settings: Any) -> FastAPI:
    return create_app(GatewaySettings(**settings), CATALOG)


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return app().openapi()


def test_no_route_documents_fastapis_422_since_bad_input_is_a_400(
    document: dict[str, Any],
) -> None:
    for route, operation in operations(document).items():
        responses = operation["responses"]
        if "422" in responses:  # only the idempotency key's own refusal
            assert "idempotency_key_reused" in responses["422"]["description"], route
        if "requestBody" in operation:
            assert "invalid_json" in responses["400"]["description"], route
    assert set(document["components"]["schemas"]).isdisjoint(
        {"HTTPValidationError", "ValidationError"}
    )
    with_422 = {r for r, op in operations(document).items() if "422" in op["responses"]}
    assert with_422 == {
        "POST /v1/chat/completions",
        "POST /v1/messages",
        "POST /v1/conversations/{conversation_id}/messages",
        "POST /v1/responses",
    }


def test_every_error_status_has_the_one_error_body_schema(document: dict[str, Any]) -> None:
    for route, operation in operations(document).items():
        for status, response in operation["responses"].items():
            if int(status) >= 400 and route != "GET /readyz":
                # Anthropic's routes answer in Anthropic's error shape.
                schema = ANTHROPIC_ERROR_SCHEMA if " /v1/messages" in route else ERROR_SCHEMA
                assert response["content"] == {"application/json": {"schema": schema}}, route
        if route.split()[1].startswith("/v1/"):
            assert {"401", "503"} <= set(operation["responses"]), route
    schema = document["components"]["schemas"]["ErrorBody"]
    assert schema["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    ErrorBody.model_validate(error_body("x", 404, "model_not_found", "model"))
    AnthropicErrorBody.model_validate(anthropic_error_body("x", 404, "model_not_found", "model"))


@pytest.mark.parametrize(
    ("route", "statuses"),
    [
        ("POST /v1/chat/completions", {200, 400, 401, 404, 413, 422, 429, 502, 503, 504}),
        ("POST /v1/jobs", {202, 400, 401, 404, 413, 429, 503}),
        ("GET /v1/conversations/{conversation_id}/stream", {200, 400, 401, 404, 410, 503}),
        ("POST /v1/conversations/{conversation_id}/cancel", {200, 401, 404, 409, 503}),
        ("GET /v1/models/{model_id}", {200, 401, 404, 503}),
        ("GET /healthz", {200}),
        ("GET /readyz", {200, 503}),
    ],
)
def test_a_route_lists_the_statuses_it_answers(
    document: dict[str, Any], route: str, statuses: set[int]
) -> None:
    assert {int(s) for s in operations(document)[route]["responses"]} == statuses


def test_the_streaming_routes_document_their_events(document: dict[str, Any]) -> None:
    chat = operations(document)["POST /v1/chat/completions"]["responses"]["200"]["content"]
    assert set(chat) == {"application/json", "text/event-stream"}
    stream = operations(document)["GET /v1/conversations/{conversation_id}/stream"]
    events = stream["responses"]["200"]["content"]
    assert set(events) == {"text/event-stream"}
    assert "delta" in events["text/event-stream"]["itemSchema"]["properties"]["event"]["enum"]


def test_every_route_is_in_the_error_table_and_the_table_names_only_routes(
    document: dict[str, Any],
) -> None:
    assert set(operations(document)) == set(ROUTE_ERRORS)


async def test_docs_pages_are_off_by_default_and_the_document_is_served() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app()), base_url="http://gateway"
    ) as http:
        assert (await http.get("/docs")).status_code == 404
        assert (await http.get("/redoc")).status_code == 404
        assert (await http.get("/openapi.json")).status_code == 200


async def test_docs_pages_are_served_when_enabled() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app(api_docs=True)),
        base_url="http://gateway",
    ) as http:
        for page in ("/docs", "/redoc"):
            answer = await http.get(page)
            assert answer.status_code == 200
            assert "/openapi.json" in answer.text
