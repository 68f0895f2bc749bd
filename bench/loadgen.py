"""N concurrent streaming clients over real HTTP, each timing its own tokens.

Two clients: `raw` (HTTP/1.1 on asyncio streams, one connection per stream, what
the harness uses) and `httpx` (httpx.AsyncClient with a keep-alive pool). At 1,000
streams httpx costs the load generator several times more CPU per token, and the
load generator shares the machine's two cores with every route: `python -m bench
clients` measures both against the simulator alone.

A stream is `text` (tokens `t0 `, `t1 `, ...) or `tools` (the request carries `tools`
and the answer is a tool-call stream, bench/toolstream.py); either way each chunk
the client gets counts as one token, checked for its place in the order. `messages`
and `responses` are text streams through the gateway's Anthropic Messages and
OpenAI Responses surfaces, read in their own event formats.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson

from bench.toolstream import TOOLS, Piece, piece

__all__ = ["API_KEY", "Client", "Kind", "StreamResult", "cancel_streams", "run_streams"]

# Every client sends this bearer token: LiteLLM's master key, tokenbus's dev key
# (given to `tokenbus up` as TOKENBUS_DEV_API_KEY).
API_KEY = "sk-bench-local-only-0123456789"
Client = Literal["raw", "httpx"]
Kind = Literal["text", "tools", "messages", "responses"]
# The route each kind of stream is asked on.
PATHS: dict[str, str] = {
    "text": "/v1/chat/completions",
    "tools": "/v1/chat/completions",
    "messages": "/v1/messages",
    "responses": "/v1/responses",
}
_MAX_HEAD = 64 * 1024


@dataclass
class StreamResult:
    """What one client saw: first token, gaps between tokens, order, errors.

    For a `tools` stream each tool-call piece is a token, and `expect` (the stream's
    length) says what each piece should be.
    """

    kind: Kind = "text"
    expect: int = 0
    ttft_s: float | None = None
    gaps_s: list[float] = field(default_factory=list)
    total_s: float = 0.0
    tokens: int = 0
    in_order: bool = True
    done: bool = False
    finish_reason: str | None = None
    error: str | None = None

    def take(self, data: bytes, start: float, last: float) -> float:
        """Account for one SSE `data:` payload received now; returns the new last-token time."""
        if data == b"[DONE]":
            self.done = True
            return last
        if not data.startswith(b"{"):
            return last
        chunk = orjson.loads(data)
        if self.kind in ("messages", "responses"):
            return self._take_event(chunk, start, last)
        if "error" in chunk:
            self.error = f"error event: {chunk['error'].get('code') or chunk['error']}"
            return last
        choices = chunk.get("choices") or []
        if not choices:
            return last
        choice = choices[0]
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        delta = choice.get("delta") or {}
        content, calls = delta.get("content"), delta.get("tool_calls")
        if not content and not calls:
            return last
        now = time.perf_counter()
        if self.ttft_s is None:
            self.ttft_s = now - start
        else:
            self.gaps_s.append(now - last)
        for word in (content or "").split():
            self.in_order &= self.kind == "text" and word == f"t{self.tokens}"
            self.tokens += 1
        for call in calls or ():
            self.in_order &= self.kind == "tools" and _piece(call) == piece(
                self.tokens, self.expect
            )
            self.tokens += 1
        return now

    def _take_event(self, event: dict[str, Any], start: float, last: float) -> float:
        """An Anthropic Messages or OpenAI Responses stream event."""
        kind = event.get("type")
        # A Responses stream cut at max_output_tokens ends `incomplete`, as OpenAI's does.
        if kind in ("message_stop", "response.completed", "response.incomplete"):
            self.done = True
        elif kind in ("error", "response.failed"):
            self.error = f"error event: {event.get('error') or kind}"
        elif kind == "message_delta":
            self.finish_reason = (event.get("delta") or {}).get("stop_reason")
        text = None
        if kind == "content_block_delta":
            text = (event.get("delta") or {}).get("text")
        elif kind == "response.output_text.delta":
            text = event.get("delta")
        if not text:
            return last
        return self._words(text, start, last)

    def _words(self, text: str, start: float, last: float) -> float:
        now = time.perf_counter()
        if self.ttft_s is None:
            self.ttft_s = now - start
        else:
            self.gaps_s.append(now - last)
        for word in text.split():
            self.in_order &= word == f"t{self.tokens}"
            self.tokens += 1
        return now


def _piece(call: dict[str, Any]) -> Piece:
    function = call.get("function") or {}
    return Piece(call.get("index", -1), call.get("id"), function.get("name"),
                 function.get("arguments", ""))  # fmt: skip


def _body(model: str, tokens: int, request_id: str, kind: Kind = "text") -> bytes:
    ask = f"benchmark req={request_id}"
    if kind == "messages":
        messages = [{"role": "user", "content": ask}]
        return orjson.dumps({"model": model, "max_tokens": tokens, "messages": messages,
                             "stream": True})  # fmt: skip
    if kind == "responses":
        return orjson.dumps({"model": model, "input": ask, "max_output_tokens": tokens,
                             "store": False, "stream": True})  # fmt: skip
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": f"benchmark req={request_id}"}],
        "max_tokens": tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if kind == "tools":
        body["tools"] = TOOLS
    return orjson.dumps(body)


def _finish(result: StreamResult, start: float, tokens: int) -> StreamResult:
    result.total_s = time.perf_counter() - start
    if result.error is None and result.tokens != tokens:
        result.error = f"got {result.tokens} of {tokens} tokens"
    elif result.error is None and not result.done:
        result.error = "no [DONE]"
    elif result.error is None and result.kind == "tools" and result.finish_reason != "tool_calls":
        result.error = f"finish_reason {result.finish_reason}, not tool_calls"
    return result


class _Raw:
    """A minimal HTTP/1.1 client for one POST whose answer is an SSE stream."""

    def __init__(self, base_url: str) -> None:
        url = httpx.URL(base_url)
        self.host, self.port = url.host, url.port or 80

    async def open(
        self, body: bytes, path: str = "/v1/chat/completions"
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, dict[bytes, bytes]]:
        """Send the request and read the status and headers."""
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=_MAX_HEAD)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        raw = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw[:-4].split(b"\r\n")
        status = int(status_line.split()[1])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return reader, writer, status, headers

    @staticmethod
    async def body(
        reader: asyncio.StreamReader, headers: dict[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        """The response body as it arrives, with chunked transfer coding removed."""
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            while True:  # ends at the zero-size chunk, or IncompleteReadError on a cut stream
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    return
                yield (await reader.readexactly(size + 2))[:-2]
        elif b"content-length" in headers:
            yield await reader.readexactly(int(headers[b"content-length"]))
        else:
            while data := await reader.read(65536):
                yield data


async def _sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The payload of every `data:` line, as soon as its line is complete."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()


async def _one_raw(
    base_url: str, model: str, tokens: int, request_id: str, kind: Kind = "text"
) -> StreamResult:
    result = StreamResult(kind=kind, expect=tokens)
    start = last = time.perf_counter()
    writer = None
    try:
        reader, writer, status, headers = await _Raw(base_url).open(
            _body(model, tokens, request_id, kind), PATHS[kind]
        )
        if status != 200:
            result.error = f"status {status}"
            return _finish(result, start, tokens)
        async for data in _sse_data(_Raw.body(reader, headers)):
            last = result.take(data, start, last)
            if result.error or result.done:
                break
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        result.error = type(exc).__name__
    finally:
        if writer is not None:
            writer.close()
    return _finish(result, start, tokens)


async def _one_httpx(
    client: httpx.AsyncClient,
    base_url: str,
    model: str,
    tokens: int,
    request_id: str,
    kind: Kind = "text",
) -> StreamResult:
    result = StreamResult(kind=kind, expect=tokens)
    start = last = time.perf_counter()
    url = f"{base_url}{PATHS[kind]}"
    body = _body(model, tokens, request_id, kind)
    headers = {"Content-Type": "application/json"}
    try:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            if response.status_code != 200:
                result.error = f"status {response.status_code}"
                return _finish(result, start, tokens)
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    last = result.take(line[5:].strip().encode(), start, last)
                    if result.error or result.done:
                        break
    except httpx.HTTPError as exc:
        result.error = type(exc).__name__
    return _finish(result, start, tokens)


async def run_streams(
    base_url: str,
    model: str,
    concurrency: int,
    tokens: int,
    *,
    client: Client = "raw",
    kind: Kind = "text",
    timeout_s: float = 120,
    on_done: Callable[[], object] | None = None,
    ramp_s: float = 0.0,
) -> list[StreamResult]:
    """Start `concurrency` streams and wait for all of them (each within `timeout_s`).

    All at once, or with `ramp_s` their starts spread evenly over that many seconds
    (a steady arrival rate instead of a burst); each stream's times count from its start.
    """

    async def bounded(stream: Coroutine[Any, Any, StreamResult], n: int = 0) -> StreamResult:
        if ramp_s:
            await asyncio.sleep(ramp_s * n / concurrency)
        try:
            result = await asyncio.wait_for(stream, timeout_s)
        except TimeoutError:
            result = StreamResult(kind=kind, error="timeout", total_s=timeout_s)
        if on_done is not None:
            on_done()
        return result

    tag = f"s{concurrency}x{time.monotonic_ns()}"
    if client == "raw":
        streams = [
            _one_raw(base_url, model, tokens, f"{tag}n{n}", kind) for n in range(concurrency)
        ]
        return list(await asyncio.gather(*map(bounded, streams, range(concurrency))))
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s, headers=auth) as pool:
        streams = [
            _one_httpx(pool, base_url, model, tokens, f"{tag}n{n}", kind)
            for n in range(concurrency)
        ]
        return list(await asyncio.gather(*map(bounded, streams, range(concurrency))))


async def _leave_after(base_url: str, body: bytes, after_tokens: int) -> float:
    """One stream closed after `after_tokens` tokens, as a closed tab would; returns when."""
    reader, writer, status, headers = await _Raw(base_url).open(body)
    try:
        if status != 200:
            raise RuntimeError(f"{base_url} answered {status}")
        result = StreamResult()
        start = last = time.perf_counter()
        async for data in _sse_data(_Raw.body(reader, headers)):
            last = result.take(data, start, last)
            if result.tokens >= after_tokens or result.done or result.error:
                break
        if result.tokens < after_tokens:
            raise RuntimeError(f"{base_url}: stream ended after {result.tokens} tokens")
    finally:
        # Close at once, unread data and all, as a killed tab or a dropped network would.
        writer.transport.abort()
    return time.time()


async def cancel_streams(
    base_url: str, model: str, count: int, after_tokens: int, tag: str, max_tokens: int
) -> tuple[dict[str, float], list[str]]:
    """Streams that leave after `after_tokens` tokens: when each closed, and what failed."""
    closed: dict[str, float] = {}
    failures: list[str] = []
    for n in range(count):  # one at a time: the latency of each, not of a crowd
        request_id = f"{tag}c{n}"
        try:
            closed[request_id] = await asyncio.wait_for(
                _leave_after(base_url, _body(model, max_tokens, request_id), after_tokens), 30
            )
        except (OSError, RuntimeError, TimeoutError, asyncio.IncompleteReadError) as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(0.05)
    return closed, failures
