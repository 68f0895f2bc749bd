"""The API document (/openapi.json) lists what each route really answers.

FastAPI documents a 422 for every route with input, but the gateway answers bad
input with 400 in OpenAI's error shape, and its middlewares and dependencies add
answers no route declares: 401 from the key check, 413 from the body limit, 503
while draining or without the bus. So the document is rewritten once, from the
table below: every error status a route gives, with the codes it carries and the
one error body schema, and the SSE events of the streaming routes.
"""

from __future__ import annotations

import http
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from services.gateway.http.errors import (
    ANTHROPIC_ROUTES,
    TURN_FAILURE_STATUS,
    AnthropicErrorBody,
    ErrorBody,
)

__all__ = ["ROUTE_ERRORS", "document_responses"]

Errors = Mapping[int, tuple[str, ...]]

_API_ROUTE: Errors = {
    401: ("missing_api_key", "invalid_api_key"),
    503: ("gateway_draining", "bus_unavailable"),
}
_WITH_BODY: Errors = {400: ("invalid_json", "invalid_value"), 413: ("body_too_large",)}
_GENERATION: Errors = {
    400: ("context_length_exceeded",),
    429: ("rate_limit_exceeded", "budget_exceeded"),
    503: ("overloaded",),
}
# Chat Completions bodies: fields refused by name, and image parts.
_COMPLETION_BODY: Errors = {
    400: ("unsupported_parameter", "unsupported_content", "invalid_image", "too_many_images"),
    413: ("image_too_large", "request_too_large"),
}
_IDEMPOTENT: Errors = {400: ("invalid_idempotency_key",), 422: ("idempotency_key_reused",)}
_CONVERSATION: Errors = {404: ("conversation_not_found",)}


def _turn_failures() -> Errors:
    """A non-streaming completion answers with the status of the code its turn failed with."""
    failures: dict[int, tuple[str, ...]] = {}
    for code, status in TURN_FAILURE_STATUS.items():
        failures[status] = (*failures.get(status, ()), code)
    return failures


# Beyond _API_ROUTE (every /v1 route) and _WITH_BODY (every route with a body).
ROUTE_ERRORS: dict[str, tuple[Errors, ...]] = {
    "POST /v1/chat/completions": (
        _GENERATION,
        _COMPLETION_BODY,
        _IDEMPOTENT,
        {404: ("model_not_found",)},
        _turn_failures(),
    ),
    "POST /v1/messages": (
        _GENERATION,
        _COMPLETION_BODY,
        _IDEMPOTENT,
        {400: ("unsupported_parameter", "unsupported_content"), 404: ("model_not_found",)},
        _turn_failures(),
    ),
    "POST /v1/messages/count_tokens": (
        _COMPLETION_BODY,
        {400: ("context_length_exceeded",), 404: ("model_not_found",)},
    ),
    "POST /v1/responses": (
        _GENERATION,
        _IDEMPOTENT,
        {
            400: ("unsupported_parameter", "unsupported_content"),
            404: ("model_not_found", "response_not_found"),
            409: ("turn_in_progress",),
            413: ("request_too_large",),
        },
        _turn_failures(),
    ),
    "GET /v1/responses/{response_id}": (
        {
            400: ("invalid_value", "unsupported_parameter"),
            404: ("response_not_found",),
            410: ("stream_expired",),
        },
    ),
    "POST /v1/responses/{response_id}/cancel": ({404: ("response_not_found",)},),
    "DELETE /v1/responses/{response_id}": ({404: ("response_not_found",)},),
    "GET /v1/models": (),
    "GET /v1/models/{model_id}": ({404: ("model_not_found",)},),
    "POST /v1/conversations": ({404: ("model_not_found",)},),
    "GET /v1/conversations": (),
    "GET /v1/conversations/{conversation_id}": (_CONVERSATION,),
    "PATCH /v1/conversations/{conversation_id}": (_CONVERSATION,),
    "DELETE /v1/conversations/{conversation_id}": (_CONVERSATION,),
    "POST /v1/conversations/{conversation_id}/messages": (
        _GENERATION,
        _IDEMPOTENT,
        {404: ("conversation_not_found", "model_not_found"), 409: ("turn_in_progress",)},
    ),
    "GET /v1/conversations/{conversation_id}/stream": (
        {400: ("invalid_last_event_id",), 404: ("conversation_not_found", "turn_not_found")},
        {410: ("turn_expired",)},
    ),
    "POST /v1/conversations/{conversation_id}/cancel": (
        _CONVERSATION,
        {409: ("no_turn_in_progress",)},
    ),
    "POST /v1/jobs": (_GENERATION, _COMPLETION_BODY, {404: ("model_not_found",)}),
    "GET /v1/jobs/{job_id}": ({404: ("job_not_found",)},),
    "GET /v1/usage": ({400: ("invalid_value",)},),
    "POST /v1/embeddings": (
        {
            400: ("context_length_exceeded", "unsupported_parameter", "invalid_request"),
            404: ("model_not_found",),
            429: ("rate_limit_exceeded", "budget_exceeded", "rate_limited"),
            502: ("upstream_error",),
            503: ("embedder_unavailable", "upstream_unavailable"),
            504: ("timeout",),
        },
    ),
    "GET /healthz": (),
    "GET /readyz": (),
}

_CHAT_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"const": "message"},
        "data": {
            "type": "string",
            "description": (
                "a chat.completion.chunk as JSON; `[DONE]` last; a failed turn ends with "
                '{"error": {...}} and no `[DONE]`'
            ),
        },
    },
}
_CONVERSATION_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {
            "enum": [
                "turn",
                "delta",
                "tool_call_delta",
                "tool_call",
                "usage",
                "done",
                "error",
                "reset",
                "reconnect",
                "title",
            ]
        },
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string", "description": "<turn_id>:<attempt>:<seq>, for Last-Event-ID"},
    },
}
_MESSAGE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {
            "enum": [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
                "ping",
                "error",
            ]
        },
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}
_RESPONSE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {
            "type": "string",
            "description": (
                "response.created, response.in_progress, response.output_item.added, "
                "response.content_part.added, response.output_text.delta, "
                "response.function_call_arguments.delta, ...done, response.completed, "
                "response.incomplete or response.failed"
            ),
        },
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}
# The streaming routes' 200: "only" SSE, or SSE "also" (chat completions with stream: true).
_STREAMS: dict[str, tuple[str, Mapping[str, Any]]] = {
    "POST /v1/chat/completions": ("also", _CHAT_EVENT),
    "POST /v1/messages": ("also", _MESSAGE_EVENT),
    "POST /v1/responses": ("also", _RESPONSE_EVENT),
    "GET /v1/responses/{response_id}": ("also", _RESPONSE_EVENT),
    "POST /v1/conversations/{conversation_id}/messages": ("only", _CONVERSATION_EVENT),
    "GET /v1/conversations/{conversation_id}/stream": ("only", _CONVERSATION_EVENT),
}
_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "string"}}
}


def document_responses(app: FastAPI) -> None:
    """Make app.openapi() answer the rewritten document (built once, then cached)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _rewritten(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _rewritten(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    for body in (ErrorBody, AnthropicErrorBody):
        error_schema = body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(error_schema.pop("$defs", {}))
        schemas[body.__name__] = error_schema
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            route = f"{method.upper()} {path}"
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)  # FastAPI's; the gateway's own is listed below
            shape = "AnthropicErrorBody" if path.startswith(ANTHROPIC_ROUTES) else "ErrorBody"
            for status, codes in sorted(_errors_of(route, path, operation).items()):
                responses[str(status)] = _error_response(status, codes, shape)
            if route in _STREAMS:
                _document_stream(responses["200"], *_STREAMS[route])
            if route == "GET /readyz":
                responses["503"] = {
                    **responses["200"],
                    "description": "Not ready (bus or relay down, or draining): the same body",
                }
    return document


def _errors_of(route: str, path: str, operation: Mapping[str, Any]) -> dict[int, tuple[str, ...]]:
    tables: list[Errors] = []
    if path.startswith("/v1/"):
        tables.append(_API_ROUTE)
    if "requestBody" in operation:
        tables.append(_WITH_BODY)
    tables.extend(ROUTE_ERRORS.get(route, ()))
    merged: dict[int, tuple[str, ...]] = {}
    for table in tables:
        for status, codes in table.items():
            known = merged.get(status, ())
            merged[status] = (*known, *(c for c in codes if c not in known))
    return merged


def _error_response(status: int, codes: tuple[str, ...], shape: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": f"{http.HTTPStatus(status).phrase}: " + ", ".join(f"`{c}`" for c in codes),
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{shape}"}}},
    }
    if status in (429, 503):
        response["headers"] = _RETRY_AFTER
    return response


def _document_stream(response: dict[str, Any], kind: str, event: Mapping[str, Any]) -> None:
    content: dict[str, Any] = response.setdefault("content", {})
    if kind == "only":
        content.clear()
    content["text/event-stream"] = {"itemSchema": dict(event)}
