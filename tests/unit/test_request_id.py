"""X-Request-ID: kept when well formed, made when missing or malformed, always answered."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Header
from fastapi.responses import StreamingResponse

from services.gateway.http.body_limit import BodyLimitMiddleware
from services.gateway.http.errors import ApiError, install_error_handlers
from services.gateway.http.request_id import RequestIdMiddleware

PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def gateway_like_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyLimitMiddleware, max_bytes=10)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)

    @app.get("/echo")
    async def echo(x_request_id: str | None = Header(default=None)) -> dict[str, str | None]:
        return {"seen": x_request_id}

    @app.get("/refused")
    async def refused() -> None:
        raise ApiError(429, "slow down", "rate_limited")

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("bug")

    @app.post("/upload")
    async def upload() -> dict[str, str]:
        return {}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            yield b"data: 1\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway_like_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


async def test_a_well_formed_id_is_kept_and_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/echo", headers={"X-Request-ID": "client-id_42"})
    assert response.headers["x-request-id"] == "client-id_42"
    assert response.json() == {"seen": "client-id_42"}


async def test_a_missing_id_is_made_and_handed_to_the_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/echo")
    made = response.headers["x-request-id"]
    assert PATTERN.match(made)
    assert response.json() == {"seen": made}


@pytest.mark.parametrize("bad", ["has space", "semi;colon", "x" * 65, "ünïcode"])
async def test_a_malformed_id_is_replaced_not_refused(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.get("/echo", headers=[(b"X-Request-ID", bad.encode())])
    assert response.status_code == 200
    made = response.headers["x-request-id"]
    assert made != bad
    assert PATTERN.match(made)
    assert response.json() == {"seen": made}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/refused", 429), ("GET", "/broken", 500), ("GET", "/nowhere", 404),
     ("POST", "/upload", 413), ("GET", "/stream", 200)],
)  # fmt: skip
async def test_every_response_carries_the_id(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(
        method,
        path,
        headers={"X-Request-ID": "abc"},
        content=b"x" * 100 if method == "POST" else None,
    )
    assert response.status_code == status
    assert response.headers.get_list("x-request-id") == ["abc"]


async def test_a_made_id_is_answered_on_a_500_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/broken")
    assert response.status_code == 500
    assert PATTERN.match(response.headers["x-request-id"])
