"""An OpenAI-compatible streaming upstream that is cheap enough never to be the bottleneck.

Tokens are `t0 `, `t1 `, ... so a client can check order and completeness. The
last user message may carry `req=<id>`: when a client leaves mid-stream, the
moment the simulator sees its connection close is recorded under that id
(GET /_stats), which is how the harness measures cancellation latency.

Run: python -m bench.upstream_sim --port 9100 --ttft-ms 50 --itl-ms 20 --tokens 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

_REQ = re.compile(r"req=([A-Za-z0-9_-]+)")


def _compact(value: object) -> str:
    # OpenAI's wire format has no spaces after separators; clients may rely on it.
    return json.dumps(value, separators=(",", ":"))


class Simulator:
    def __init__(self, ttft_s: float, itl_s: float, tokens: int) -> None:
        self.ttft_s, self.itl_s, self.tokens = ttft_s, itl_s, tokens
        self.started = 0
        self.completed = 0
        self.aborted: dict[str, float] = {}
        head = {"id": "chatcmpl-sim", "object": "chat.completion.chunk", "created": 0}
        self._head = _compact(head)[:-1].encode()

    def _chunk(self, model: str, content: str | None, finish: str | None = None) -> bytes:
        delta = {} if content is None else {"content": content}
        body = {"model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + self._head + b"," + _compact(body)[1:].encode() + b"\n\n"

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        model = str(body.get("model", "sim"))
        tokens = int(body.get("max_tokens") or self.tokens)
        tokens = min(tokens, self.tokens)
        text = str(body.get("messages", [{}])[-1].get("content", ""))
        found = _REQ.search(text)
        request_id = found.group(1) if found else None
        self.started += 1
        if not body.get("stream"):
            await asyncio.sleep(self.ttft_s + self.itl_s * tokens)
            self.completed += 1
            return JSONResponse(self._whole(model, tokens))
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        # uvicorn drops writes to a closed connection silently, so a client that
        # leaves is noticed on the receive channel, the moment it goes.
        watcher = asyncio.create_task(self._watch(request, request_id))
        return StreamingResponse(
            self._stream(model, tokens, usage, watcher), media_type="text/event-stream"
        )

    async def _watch(self, request: Request, request_id: str | None) -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        if request_id:
            self.aborted[request_id] = time.time()

    async def _stream(
        self, model: str, tokens: int, usage: bool, watcher: asyncio.Task[None]
    ) -> AsyncIterator[bytes]:
        try:
            yield self._chunk(model, "")
            await asyncio.sleep(self.ttft_s)
            for n in range(tokens):
                if n:
                    await asyncio.sleep(self.itl_s)
                yield self._chunk(model, f"t{n} ")
            yield self._chunk(model, None, "length")
            if usage:
                body = {"id": "chatcmpl-sim", "object": "chat.completion.chunk", "created": 0,
                        "model": model, "choices": [],
                        "usage": {"prompt_tokens": 10, "completion_tokens": tokens,
                                  "total_tokens": 10 + tokens}}  # fmt: skip
                yield b"data: " + _compact(body).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"
            self.completed += 1
        finally:
            if not watcher.done():
                watcher.cancel()

    def _whole(self, model: str, tokens: int) -> dict[str, Any]:
        return {
            "id": "chatcmpl-sim", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "length",
                         "message": {"role": "assistant",
                                     "content": "".join(f"t{n} " for n in range(tokens))}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": tokens,
                      "total_tokens": 10 + tokens},
        }  # fmt: skip

    async def stats(self, request: Request) -> Response:
        return JSONResponse(
            {"started": self.started, "completed": self.completed, "aborted": self.aborted}
        )

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "sim", "object": "model"}]})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models),
                Route("/health", self.health),
                Route("/_stats", self.stats),
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--ttft-ms", type=float, default=50)
    parser.add_argument("--itl-ms", type=float, default=20)
    parser.add_argument("--tokens", type=int, default=40)
    args = parser.parse_args()
    sim = Simulator(args.ttft_ms / 1000, args.itl_ms / 1000, args.tokens)
    uvicorn.run(
        sim.app(), host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
        log_level="warning", access_log=False, backlog=4096,
    )  # fmt: skip


if __name__ == "__main__":
    main()
