"""An OpenAI-compatible streaming upstream that is cheap enough never to be the bottleneck.

Tokens are `t0 `, `t1 `, ... so a client can check order and completeness; a stream
has max_tokens of them (--tokens if the request has none, at most 2,000). The
last user message may carry `req=<id>`: when a client leaves mid-stream, the
moment the simulator sees its connection close is recorded under that id
(GET /_stats), which is how the harness measures cancellation latency. A request
with `tools` is answered with a tool-call stream of as many chunks instead
(bench/toolstream.py), so one simulator serves both kinds of stream.

Run: python -m bench.upstream_sim --port 9100 --ttft-ms 50 --itl-ms 20 --tokens 40
(or set BENCH_SIM_PORT, BENCH_SIM_TTFT_MS, BENCH_SIM_ITL_MS, BENCH_SIM_TOKENS).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

from bench.toolstream import call_arguments, pieces

__all__ = ["Simulator", "main"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_REQ = re.compile(rb"req=([A-Za-z0-9_-]+)")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_JSON_HEADERS = [(b"content-type", b"application/json")]
_CREATED = 1_700_000_000
# A request's max_tokens may ask for more than --tokens (cancellation streams must
# outlast the slowest route's reaction), up to this many.
_MAX_TOKENS = 2_000


class _Frames:
    """Every SSE frame of one model's stream, encoded once and reused by all requests."""

    def __init__(self, model: str, tokens: int) -> None:
        # OpenAI's wire format: compact JSON, one `data:` line per chunk, a blank line after.
        def frame(choices: list[dict[str, Any]], usage: Any, with_usage: bool) -> bytes:
            body: dict[str, Any] = {
                "id": "chatcmpl-sim",
                "object": "chat.completion.chunk",
                "created": _CREATED,
                "model": model,
                "system_fingerprint": "fp_sim",
                "choices": choices,
            }
            if with_usage:
                body["usage"] = usage
            return b"data: " + orjson.dumps(body) + b"\n\n"

        def delta(content: dict[str, Any], finish: str | None, with_usage: bool) -> bytes:
            choice = {"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}
            return frame([choice], None, with_usage)

        # With include_usage, OpenAI puts `"usage":null` on every chunk before the last.
        self.first = {u: delta({"role": "assistant", "content": ""}, None, u) for u in (0, 1)}
        self.tokens = {
            u: [delta({"content": f"t{n} "}, None, u) for n in range(tokens)] for u in (0, 1)
        }
        self.finish = {u: delta({}, "length", u) for u in (0, 1)}
        self.tool_finish = {u: delta({}, "tool_calls", u) for u in (0, 1)}
        self._delta = delta
        self._tool_calls: dict[tuple[int, int], list[bytes]] = {}
        self.usage = [
            frame([], {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}, True)
            for n in range(tokens + 1)
        ]

    def tool_calls(self, usage: int, total: int) -> list[bytes]:
        """The chunks of a tool-call stream of `total` pieces (its last pieces close the JSON)."""
        key = (usage, total)
        if key not in self._tool_calls:
            self._tool_calls[key] = [
                self._delta({"tool_calls": [p.wire()]}, None, bool(usage)) for p in pieces(total)
            ]
        return self._tool_calls[key]


class Simulator:
    """The ASGI app: chat completions (streamed or whole), models, health and stats."""

    def __init__(self, ttft_s: float, itl_s: float, tokens: int) -> None:
        self.ttft_s, self.itl_s, self.tokens = ttft_s, itl_s, tokens
        self.started = self.completed = self.open = 0
        self.aborted: dict[str, float] = {}
        self._cap = max(tokens, _MAX_TOKENS)
        self._frames: dict[str, _Frames] = {}
        self._anonymous = itertools.count()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # uvicorn runs with lifespan off: http is all there is
            return
        path, method = scope["path"], scope["method"]
        if path == "/v1/chat/completions" and method == "POST":
            await self._chat(receive, send)
        elif path == "/v1/models":
            models = {"object": "list", "data": [{"id": "sim", "object": "model", "created": 0,
                                                  "owned_by": "bench"}]}  # fmt: skip
            await _json(send, 200, models)
        elif path == "/health":
            await _json(send, 200, {"status": "ok"})
        elif path == "/_stats":
            await _json(send, 200, self.stats())
        else:
            await _json(send, 404, {"error": {"message": "not found", "type": "invalid_request"}})

    def stats(self) -> dict[str, Any]:
        """Counts of streams, and when each stream that ended early lost its client."""
        return {
            "started": self.started,
            "completed": self.completed,
            "open": self.open,
            "aborted_count": len(self.aborted),
            "aborted": self.aborted,
        }

    def _frames_for(self, model: str) -> _Frames:
        frames = self._frames.get(model)
        if frames is None:
            frames = self._frames[model] = _Frames(model, self._cap)
        return frames

    async def _chat(self, receive: Receive, send: Send) -> None:
        raw = b""
        while True:  # bounded by the client's body: uvicorn ends it with more_body False
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = orjson.loads(raw)
        model = str(body.get("model", "sim"))
        asked = body.get("max_tokens") or body.get("max_completion_tokens") or self.tokens
        tokens = min(int(asked), self._cap)
        found = _REQ.search(raw)
        request_id = found.group(1).decode() if found else f"anon{next(self._anonymous)}"
        tools = bool(body.get("tools"))
        self.started += 1
        if not body.get("stream"):
            await asyncio.sleep(self.ttft_s + self.itl_s * max(0, tokens - 1))
            self.completed += 1
            await _json(send, 200, _whole(model, tokens, tools))
            return
        usage = int(bool((body.get("stream_options") or {}).get("include_usage")))
        self.open += 1
        streaming = asyncio.ensure_future(self._stream(send, model, tokens, usage, tools))
        try:
            # uvicorn drops writes to a closed connection silently, so a client that
            # leaves is noticed on the receive channel, at the moment it goes.
            disconnected = asyncio.ensure_future(_until_disconnect(receive))
            await asyncio.wait({streaming, disconnected}, return_when=asyncio.FIRST_COMPLETED)
            if disconnected.done() and not streaming.done():
                self.aborted[request_id] = time.time()
                streaming.cancel()
            else:
                disconnected.cancel()
                self.completed += 1
        finally:
            self.open -= 1

    async def _stream(self, send: Send, model: str, tokens: int, usage: int, tools: bool) -> None:
        frames = self._frames_for(model)
        if tools:
            chunks, finish = frames.tool_calls(usage, tokens), frames.tool_finish[usage]
        else:
            chunks, finish = frames.tokens[usage][:tokens], frames.finish[usage]
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        # The role chunk goes at once, as OpenAI's does: it carries no token.
        await send({"type": "http.response.body", "body": frames.first[usage], "more_body": True})
        await asyncio.sleep(self.ttft_s)
        for n, chunk in enumerate(chunks):
            if n:
                await asyncio.sleep(self.itl_s)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        tail = finish + (frames.usage[tokens] if usage else b"")
        await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n"})


async def _until_disconnect(receive: Receive) -> None:
    # Bounded: after the body, uvicorn's next message is http.disconnect and nothing else.
    while (await receive())["type"] != "http.disconnect":
        pass


async def _json(send: Send, status: int, value: object) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
    await send({"type": "http.response.body", "body": orjson.dumps(value)})


def _whole(model: str, tokens: int, tools: bool) -> dict[str, Any]:
    content = "".join(f"t{n} " for n in range(tokens))
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tools:
        calls = [{"id": f"call_sim{i}", "type": "function",
                  "function": {"name": "lookup", "arguments": arguments}}
                 for i, arguments in enumerate(call_arguments(tokens))]  # fmt: skip
        message = {"role": "assistant", "content": None, "tool_calls": calls}
    return {
        "id": "chatcmpl-sim", "object": "chat.completion", "created": _CREATED, "model": model,
        "system_fingerprint": "fp_sim",
        "choices": [{"index": 0, "finish_reason": "tool_calls" if tools else "length",
                     "logprobs": None, "message": message}],
        "usage": {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens},
    }  # fmt: skip


def main() -> None:
    """Serve the simulator on 127.0.0.1 with uvloop and httptools."""
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(env("BENCH_SIM_PORT", "9100")))
    parser.add_argument("--ttft-ms", type=float, default=float(env("BENCH_SIM_TTFT_MS", "50")))
    parser.add_argument("--itl-ms", type=float, default=float(env("BENCH_SIM_ITL_MS", "20")))
    parser.add_argument("--tokens", type=int, default=int(env("BENCH_SIM_TOKENS", "40")))
    args = parser.parse_args()
    sim = Simulator(args.ttft_ms / 1000, args.itl_ms / 1000, args.tokens)
    uvicorn.run(
        sim, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
        log_level="warning", access_log=False, backlog=4096, lifespan="off",
    )  # fmt: skip


if __name__ == "__main__":
    main()
