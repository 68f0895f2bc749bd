"""Errors at the edge, always in OpenAI's shape: {"error": {message, type, param, code}}."""

from __future__ import annotations

import logging
from typing import Any, Literal

import nats.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.metrics import ERRORS

__all__ = [
    "ANTHROPIC_ROUTES",
    "TURN_FAILURE_STATUS",
    "AnthropicErrorBody",
    "ApiError",
    "ErrorBody",
    "anthropic_error_body",
    "bus_unavailable",
    "error_body",
    "error_body_for",
    "install_error_handlers",
    "turn_failure_status",
]

log = logging.getLogger("tokenbus.gateway")

# One table for every failure code a turn can end with: the HTTP status of a
# non-streaming call, and the `code` of an SSE error event.
TURN_FAILURE_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "context_length_exceeded": 400,
    "content_filtered": 400,
    "rate_limited": 429,
    "upstream_error": 502,
    "invalid_output": 502,
    "stream_interrupted": 502,
    "upstream_unavailable": 503,
    "overloaded": 503,
    "timeout": 504,
}


def turn_failure_status(code: str) -> int:
    return TURN_FAILURE_STATUS.get(code, 502)


def _error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "api_error"
    return "invalid_request_error"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """Every error answer, as the API document describes it (error_body builds it)."""

    error: ErrorDetail


class AnthropicErrorDetail(BaseModel):
    type: str
    message: str
    code: str | None = None
    param: str | None = None


class AnthropicErrorBody(BaseModel):
    """Every error answer of the Anthropic routes (anthropic_error_body builds it)."""

    type: Literal["error"]
    error: AnthropicErrorDetail


def error_body(
    message: str, status: int, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": _error_type(status), "param": param, "code": code}
    }


# Anthropic's error types by status: what its SDK turns into its exception classes.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}
# Routes that answer in Anthropic's error shape, as its SDK expects there.
ANTHROPIC_ROUTES = "/v1/messages"


def anthropic_error_body(
    message: str, status: int, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """Anthropic's `{"type": "error", "error": {type, message}}`, with tokenbus's stable
    code and the field at fault kept beside them."""
    kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    error: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        error["code"] = code
    if param is not None:
        error["param"] = param
    return {"type": "error", "error": error}


def error_body_for(
    path: str, message: str, status: int, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The error body in the dialect of the API the request was made to."""
    shape = anthropic_error_body if path.startswith(ANTHROPIC_ROUTES) else error_body
    return shape(message, status, code, param)


class ApiError(Exception):
    """An expected failure with its HTTP status and stable code."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers


def bus_unavailable() -> ApiError:
    return ApiError(
        503,
        "The gateway cannot reach its message bus right now; try again shortly.",
        "bus_unavailable",
        headers={"Retry-After": "1"},
    )


def _describe(exc: RequestValidationError) -> tuple[str, str | None, str]:
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON.", None, "invalid_json"
    param = ".".join(loc) or None
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
    return message, param, "invalid_value"


def _body_unreadable(exc: StarletteHTTPException) -> bool:
    # FastAPI answers a body json.loads cannot even start on (invalid UTF-8, nesting
    # past the recursion limit) with a bare 400 raised from the decoding error.
    return exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        ERRORS.labels(exc.code or f"http_{exc.status}").inc()
        return JSONResponse(
            error_body_for(request.url.path, exc.message, exc.status, exc.code, exc.param),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param, code = _describe(exc)
        ERRORS.labels(code).inc()
        body = error_body_for(request.url.path, message, 400, code, param)
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        path = request.url.path
        if _body_unreadable(exc):
            ERRORS.labels("invalid_json").inc()
            return JSONResponse(
                error_body_for(path, "The request body is not valid JSON.", 400, "invalid_json"),
                status_code=400,
            )
        ERRORS.labels(f"http_{exc.status_code}").inc()
        return JSONResponse(
            error_body_for(path, str(exc.detail), exc.status_code), status_code=exc.status_code
        )

    @app.exception_handler(nats.errors.MaxPayloadError)
    async def _too_big_for_the_bus(
        request: Request, _: nats.errors.MaxPayloadError
    ) -> JSONResponse:
        # A record or request over the bus's message size: retrying cannot help, so not
        # the 503 of a bus that is down. A conversation's whole history is one record.
        return await _api_error(
            request,
            ApiError(
                413,
                "This is larger than the bus carries in one message (NATS max_payload); "
                "for a conversation, its history has outgrown the store: start a new one.",
                "request_too_large",
            ),
        )

    @app.exception_handler(nats.errors.Error)
    async def _bus_lost(_: Request, exc: nats.errors.Error) -> JSONResponse:
        # Every bus call is bounded (TOKENBUS_GATEWAY_BUS_TIMEOUT_S): a bus that is down,
        # reconnecting or too slow is a retryable 503, never a 500.
        log.warning("bus unavailable", extra={"error_type": type(exc).__name__})
        return await _api_error(_, bus_unavailable())

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a traceback or upstream text in the answer: the type is logged to find it.
        log.error("unhandled error", extra={"error_type": type(exc).__name__})
        ERRORS.labels("internal_error").inc()
        # Starlette answers this one outside every middleware, so the request-id
        # middleware cannot add its header: echo the id it left in the request.
        request_id = request.headers.get("x-request-id")
        return JSONResponse(
            error_body_for(
                request.url.path, "The gateway failed to handle the request.", 500, "internal_error"
            ),
            status_code=500,
            headers={"X-Request-ID": request_id} if request_id else None,
        )
