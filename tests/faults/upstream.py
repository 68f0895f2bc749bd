"""A scripted OpenAI-compatible upstream, for the faults no real server makes on demand.

POST /_script with a list of steps; each chat request takes the next step
(then "ok" once the script is used up). Steps:
  {"kind": "ok", "tokens": 5}                      a normal stream with usage
  {"kind": "status", "status": 429, "retry_after": 1, "message": "..."}
  {"kind": "reset_after", "tokens": 3}             stream 3 tokens, then drop the connection
  {"kind": "malformed"}                            a chunk that is not JSON
  {"kind": "hang"}                                 accept, then send nothing
  {"kind": "reasoning"}                            as OpenAI's reasoning models: 400 for
                                                   max_tokens, stop or temperature; else ok
GET /_log answers how many chat requests arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.runtime.embedded_nats import free_port


class _Dropped(Exception):
    """Raised inside a response body: the server aborts the connection mid-stream."""


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _usage(model: str, prompt: int, completion: int) -> bytes:
    body = {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class FaultyUpstream:
    def __init__(self) -> None:
        self.script: list[dict[str, Any]] = []
        self.requests = 0
        self.port = free_port()
        self.app = Starlette(
            routes=[
                Route("/_script", self._set_script, methods=["POST"]),
                Route("/_log", self._log),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
            ]
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def play(self, *steps: dict[str, Any]) -> None:
        self.script = list(steps)

    async def _set_script(self, request: Request) -> Response:
        self.play(*(await request.json()))
        return JSONResponse({"steps": len(self.script)})

    async def _log(self, request: Request) -> Response:
        return JSONResponse({"requests": self.requests})

    async def _chat(self, request: Request) -> Response:
        self.requests += 1
        body = await request.json()
        model = body.get("model", "fault")
        step = self.script.pop(0) if self.script else {"kind": "ok"}
        kind = step["kind"]
        if kind == "reasoning":
            refused = next((p for p in ("max_tokens", "stop", "temperature") if p in body), None)
            if refused is not None:
                error = {
                    "message": f"Unsupported parameter: '{refused}' is not supported.",
                    "type": "invalid_request_error",
                    "param": refused,
                    "code": "unsupported_parameter",
                }
                return JSONResponse({"error": error}, status_code=400)
            step = {"kind": "ok", "tokens": min(5, int(body.get("max_completion_tokens", 5)))}
        if kind == "status":
            headers = {}
            if "retry_after" in step:
                headers["Retry-After"] = str(step["retry_after"])
            error = {"message": step.get("message", "upstream says no"), "type": "error"}
            return JSONResponse({"error": error}, status_code=step["status"], headers=headers)
        return StreamingResponse(self._stream(model, step), media_type="text/event-stream")

    async def _stream(self, model: str, step: dict[str, Any]) -> AsyncIterator[bytes]:
        kind = step["kind"]
        if kind == "hang":
            await asyncio.sleep(3600)
        if kind == "malformed":
            yield _chunk(model, {"role": "assistant", "content": ""})
            yield b"data: {this is not json\n\n"
            return
        tokens = int(step.get("tokens", 5))
        yield _chunk(model, {"role": "assistant", "content": ""})
        for n in range(tokens):
            yield _chunk(model, {"content": f"tok{n} "})
            await asyncio.sleep(0.005)
        if kind == "reset_after":
            raise _Dropped
        yield _chunk(model, {}, "stop")
        yield _usage(model, 7, tokens)
        yield b"data: [DONE]\n\n"


@contextlib.contextmanager
def running_upstream() -> Iterator[FaultyUpstream]:
    upstream = FaultyUpstream()
    server = uvicorn.Server(
        uvicorn.Config(upstream.app, host="127.0.0.1", port=upstream.port, log_level="critical")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the faulty upstream did not start")
        time.sleep(0.02)
    try:
        yield upstream
    finally:
        server.should_exit = True
        thread.join(timeout=10)
