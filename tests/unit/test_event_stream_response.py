"""The SSE response: sends the body, and stops it (running its cleanup) the moment the
client leaves, even while a write waits on a slow client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.gateway.http.sse import EventStreamResponse


class Client:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.slow = False

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if self.slow and message.get("body"):
            await asyncio.Event().wait()  # a write that never drains


def body(closed: list[str], chunks: int | None) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        try:
            n = 0
            while chunks is None or n < chunks:
                yield f"data: {n}\n\n".encode()
                n += 1
                await asyncio.sleep(0.01)
        finally:
            closed.append("closed")

    return gen()


async def test_the_body_is_sent_and_ended() -> None:
    client, closed = Client(), []
    await EventStreamResponse(body(closed, 3))({"type": "http"}, client.receive, client.send)
    assert client.sent[0]["type"] == "http.response.start"
    assert [m["body"] for m in client.sent[1:]] == [
        b"data: 0\n\n",
        b"data: 1\n\n",
        b"data: 2\n\n",
        b"",
    ]
    assert client.sent[-1]["more_body"] is False
    assert closed == ["closed"]


@pytest.mark.parametrize("slow", [False, True])
async def test_a_client_leaving_stops_the_body_at_once(slow: bool) -> None:
    client, closed = Client(), []
    client.slow = slow
    response = asyncio.create_task(
        EventStreamResponse(body(closed, None))({"type": "http"}, client.receive, client.send)
    )
    await asyncio.sleep(0.05)
    client.gone.set()
    await asyncio.wait_for(response, 1)  # returns, not cancelled: the leaving is handled
    assert closed == ["closed"]
    assert not any(m.get("more_body") is False for m in client.sent)


async def test_a_cancel_from_outside_still_cancels() -> None:
    client, closed = Client(), []
    response = asyncio.create_task(
        EventStreamResponse(body(closed, None))({"type": "http"}, client.receive, client.send)
    )
    await asyncio.sleep(0.05)
    response.cancel()
    with pytest.raises(asyncio.CancelledError):
        await response
    assert closed == ["closed"]
