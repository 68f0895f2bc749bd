"""A scripted upstream, for the faults no real server makes on demand.

It speaks OpenAI's chat completions (POST /v1/chat/completions) and Anthropic's
Messages API (POST /v1/messages), both streaming. POST /_script with a list of
steps; each chat request, on either API, takes the next step (then "ok" once the
script is used up). Steps:
  {"kind": "ok", "tokens": 5}                      a normal stream with usage; "delay_s"
                                                   paces its tokens (default 0.005)
  {"kind": "status", "status": 429, "retry_after": 1, "message": "..."}
  {"kind": "reset_after", "tokens": 3}             stream 3 tokens, then drop the connection
  {"kind": "malformed"}                            a chunk that is not JSON (OpenAI only)
  {"kind": "hang"}                                 accept the request, then send nothing,
                                                   not even the response headers
  {"kind": "hang_after_headers"}                   answer 200 with the stream's headers,
                                                   then send nothing
  {"kind": "hang_mid_stream", "tokens": 3}         stream 3 tokens, then send nothing
                                                   (the connection stays open)
  {"kind": "tool_calls"}                           two interleaved tool calls, finish tool_calls
                                                   (OpenAI only)
  {"kind": "text", "text": "..."}                  that text in three chunks, finish stop, usage
                                                   7 in / 3 out (OpenAI only)
  {"kind": "tool_use"}                             a text block, then two tool_use blocks with
                                                   input_json_delta pieces, stop_reason
                                                   tool_use (Anthropic only)
  {"kind": "tool_use_json", "input": {...}}        one tool_use block of the request's first
                                                   tool, its input (default a city) in
                                                   input_json_delta pieces, stop_reason
                                                   tool_use (Anthropic only)
  {"kind": "reasoning"}                            as OpenAI's reasoning models: 400 for
                                                   max_tokens, stop or temperature; else ok
A hang lasts until the client goes away. GET /_log answers how many chat requests
arrived; GET /_bodies, their JSON bodies in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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


def _event(kind: str, data: dict[str, Any]) -> bytes:
    """One Messages API stream event."""
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


async def _until_gone(request: Request) -> None:
    """A hang: nothing is sent until the client closes the connection (an hour at most)."""
    async with asyncio.timeout(3600):
        while not await request.is_disconnected():
            await asyncio.sleep(0.1)


# Two calls in one answer, their pieces interleaved, as OpenAI streams parallel calls.
_TWO_CALLS: list[dict[str, Any]] = [
    {"index": 0, "id": "call_w", "type": "function",
     "function": {"name": "get_weather", "arguments": ""}},
    {"index": 1, "id": "call_t", "type": "function",
     "function": {"name": "get_time", "arguments": ""}},
    {"index": 0, "function": {"arguments": '{"city": '}},
    {"index": 1, "function": {"arguments": '{"zone": "UTC"}'}},
    {"index": 0, "function": {"arguments": '"Paris"}'}},
]  # fmt: skip


# A text block, then two tool_use blocks, as the Messages API streams them: Anthropic
# numbers content blocks (the text one too), starts each input with an empty piece
# and sends pings in between.
_TEXT_THEN_TWO_TOOL_USES: list[tuple[str, dict[str, Any]]] = [
    ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Let me check."}}),
    ("content_block_stop", {"index": 0}),
    ("content_block_start", {"index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_w", "name": "get_weather", "input": {}}}),
    ("content_block_delta", {"index": 1, "delta": {
        "type": "input_json_delta", "partial_json": ""}}),
    ("ping", {}),
    ("content_block_delta", {"index": 1, "delta": {
        "type": "input_json_delta", "partial_json": '{"city": '}}),
    ("content_block_delta", {"index": 1, "delta": {
        "type": "input_json_delta", "partial_json": '"Paris"}'}}),
    ("content_block_stop", {"index": 1}),
    ("content_block_start", {"index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_t", "name": "get_time", "input": {}}}),
    ("content_block_delta", {"index": 2, "delta": {
        "type": "input_json_delta", "partial_json": '{"zone": "UTC"}'}}),
    ("content_block_stop", {"index": 2}),
]  # fmt: skip


_CITY = {"city": "Paris", "country": "France"}


def _one_tool_use(name: str, value: Any) -> list[tuple[str, dict[str, Any]]]:
    """One tool_use block whose input streams in pieces, as a forced tool answers."""
    text = json.dumps(value)
    cut = [0, 1, len(text) // 2, len(text) - 2, len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(cut)]
    block = {"type": "tool_use", "id": "toolu_json", "name": name, "input": {}}
    return [
        ("content_block_start", {"index": 0, "content_block": block}),
        ("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta",
                                                        "partial_json": ""}}),
        *(("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta",
                                                          "partial_json": p}})
          for p in pieces),
        ("content_block_stop", {"index": 0}),
    ]  # fmt: skip


class FaultyUpstream:
    def __init__(self) -> None:
        self.script: list[dict[str, Any]] = []
        self.requests = 0
        self.bodies: list[dict[str, Any]] = []
        self.port = free_port()
        self.app = Starlette(
            routes=[
                Route("/_script", self._set_script, methods=["POST"]),
                Route("/_log", self._log),
                Route("/_bodies", self._bodies),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/messages", self._messages, methods=["POST"]),
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

    async def _bodies(self, request: Request) -> Response:
        return JSONResponse(self.bodies)

    async def _next_step(self, request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
        self.requests += 1
        body = await request.json()
        self.bodies.append(body)
        return body, self.script.pop(0) if self.script else {"kind": "ok"}

    async def _chat(self, request: Request) -> Response:
        body, step = await self._next_step(request)
        model = body.get("model", "fault")
        kind = step["kind"]
        if kind == "hang":  # not even the response headers
            await _until_gone(request)
            return Response(status_code=204)
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
        return StreamingResponse(self._stream(request, model, step), media_type="text/event-stream")

    async def _stream(
        self, request: Request, model: str, step: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        kind = step["kind"]
        if kind == "hang_after_headers":
            await _until_gone(request)
            return
        if kind == "malformed":
            yield _chunk(model, {"role": "assistant", "content": ""})
            yield b"data: {this is not json\n\n"
            return
        if kind == "tool_calls":
            for piece in _TWO_CALLS:
                yield _chunk(model, {"tool_calls": [piece]})
                await asyncio.sleep(0.005)
            yield _chunk(model, {}, "tool_calls")
            yield _usage(model, 30, 12)
            yield b"data: [DONE]\n\n"
            return
        if kind == "text":
            text = str(step["text"])
            yield _chunk(model, {"role": "assistant", "content": ""})
            third = len(text) // 3
            for part in (text[:third], text[third : 2 * third], text[2 * third :]):
                yield _chunk(model, {"content": part})
                await asyncio.sleep(0.005)
            yield _chunk(model, {}, "stop")
            yield _usage(model, 7, 3)
            yield b"data: [DONE]\n\n"
            return
        tokens = int(step.get("tokens", 5))
        yield _chunk(model, {"role": "assistant", "content": ""})
        for n in range(tokens):
            yield _chunk(model, {"content": f"tok{n} "})
            await asyncio.sleep(float(step.get("delay_s", 0.005)))
        if kind == "reset_after":
            raise _Dropped
        if kind == "hang_mid_stream":
            await _until_gone(request)
            return
        yield _chunk(model, {}, "stop")
        yield _usage(model, 7, tokens)
        yield b"data: [DONE]\n\n"

    async def _messages(self, request: Request) -> Response:
        body, step = await self._next_step(request)
        if step["kind"] == "hang":
            await _until_gone(request)
            return Response(status_code=204)
        if step["kind"] == "status":
            error = {"type": "api_error", "message": step.get("message", "upstream says no")}
            return JSONResponse({"type": "error", "error": error}, status_code=step["status"])
        if step["kind"] == "tool_use_json":
            tool = (body.get("tools") or [{"name": "json_answer"}])[0]["name"]
            step = {**step, "blocks": _one_tool_use(tool, step.get("input", _CITY))}
        return StreamingResponse(
            self._message_events(request, body.get("model", "fault"), step),
            media_type="text/event-stream",
        )

    async def _message_events(
        self, request: Request, model: str, step: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        kind = step["kind"]
        if kind == "hang_after_headers":
            await _until_gone(request)
            return
        tokens = int(step.get("tokens", 5))
        message = {
            "id": "msg_fault",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 30 if kind == "tool_use" else 7, "output_tokens": 0},
        }
        yield _event("message_start", {"message": message})
        if kind in ("tool_use", "tool_use_json"):
            for name, data in step.get("blocks", _TEXT_THEN_TWO_TOOL_USES):
                yield _event(name, data)
                await asyncio.sleep(0.005)
            stop = {"stop_reason": "tool_use", "stop_sequence": None}
            yield _event("message_delta", {"delta": stop, "usage": {"output_tokens": 12}})
            yield _event("message_stop", {})
            return
        yield _event(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        )
        for n in range(tokens):
            delta = {"type": "text_delta", "text": f"tok{n} "}
            yield _event("content_block_delta", {"index": 0, "delta": delta})
            await asyncio.sleep(float(step.get("delay_s", 0.005)))
        if kind == "reset_after":
            raise _Dropped
        if kind == "hang_mid_stream":
            await _until_gone(request)
            return
        yield _event("content_block_stop", {"index": 0})
        stop = {"stop_reason": "end_turn", "stop_sequence": None}
        yield _event("message_delta", {"delta": stop, "usage": {"output_tokens": tokens}})
        yield _event("message_stop", {})


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
