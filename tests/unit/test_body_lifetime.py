"""A streaming route's request body is let go once the handler has answered: the stream
does not keep the conversation it was asked with (services.gateway.http.body_lifetime)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel

from services.gateway.http.body_lifetime import HandlerScopedBodyRoute
from services.gateway.http.sse import EventStreamResponse


class Ask(BaseModel):
    messages: list[str]


def streaming_app(route_class: type[APIRoute], handed: list[weakref.ref[Request]]) -> FastAPI:
    router = APIRouter(route_class=route_class)

    @router.post("/stream")
    async def stream(body: Ask, request: Request) -> EventStreamResponse:
        handed.append(weakref.ref(request))
        count = len(body.messages)

        async def events() -> AsyncIterator[bytes]:
            yield f"data: {count}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return EventStreamResponse(events())

    app = FastAPI()
    app.include_router(router)
    return app


async def body_alive_while_streaming(route_class: type[APIRoute]) -> tuple[bool, list[bytes]]:
    """Whether the Request that read the body still exists when the first event is sent."""
    handed: list[weakref.ref[Request]] = []
    app = streaming_app(route_class, handed)
    history = orjson.dumps({"messages": ["earlier turn " * 100] * 20})
    incoming: list[dict[str, Any]] = [{"type": "http.request", "body": history}]
    gone = asyncio.Event()
    sent: list[bytes] = []
    alive: list[bool] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            if not alive:
                gc.collect()
                alive.append(handed[0]() is not None)
            sent.append(message["body"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/stream",
        "raw_path": b"/stream",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return alive[0], sent


async def test_the_handlers_request_and_the_body_it_read_are_gone_while_the_stream_runs() -> None:
    alive, sent = await body_alive_while_streaming(HandlerScopedBodyRoute)
    assert sent == [b"data: 20\n\n", b"data: [DONE]\n\n"]
    assert not alive


async def test_fastapis_own_route_keeps_them_for_the_whole_stream() -> None:
    # Why the route class exists: were this to change, it could go.
    alive, _ = await body_alive_while_streaming(APIRoute)
    assert alive
