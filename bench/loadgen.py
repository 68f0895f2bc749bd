"""N concurrent streaming clients over real HTTP, each timing its own tokens."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx
import orjson

__all__ = ["StreamResult", "cancel_streams", "run_streams"]

_AUTH = {"Authorization": "Bearer sk-bench-local-only"}


@dataclass
class StreamResult:
    ttft_s: float | None = None
    gaps_s: list[float] = field(default_factory=list)
    total_s: float = 0.0
    tokens: int = 0
    in_order: bool = True
    error: str | None = None


def _body(model: str, tokens: int, request_id: str) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": f"benchmark req={request_id}"}],
        "max_tokens": tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def _one(
    client: httpx.AsyncClient, url: str, model: str, tokens: int, request_id: str
) -> StreamResult:
    result = StreamResult()
    start = time.perf_counter()
    last = start
    try:
        async with client.stream("POST", url, json=_body(model, tokens, request_id)) as response:
            if response.status_code != 200:
                result.error = f"status {response.status_code}"
                return result
            async for line in response.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = orjson.loads(line[6:])
                if "error" in chunk:
                    result.error = str(chunk["error"].get("code"))
                    break
                choices = chunk.get("choices") or []
                content = choices[0].get("delta", {}).get("content") if choices else None
                if not content:
                    continue
                now = time.perf_counter()
                if result.ttft_s is None:
                    result.ttft_s = now - start
                else:
                    result.gaps_s.append(now - last)
                last = now
                for piece in content.split():
                    result.in_order &= piece == f"t{result.tokens}"
                    result.tokens += 1
    except httpx.HTTPError as exc:
        result.error = type(exc).__name__
    result.total_s = time.perf_counter() - start
    if result.error is None and result.tokens != tokens:
        result.error = f"got {result.tokens} of {tokens} tokens"
    return result


async def run_streams(
    base_url: str, model: str, concurrency: int, tokens: int, timeout_s: float = 120
) -> list[StreamResult]:
    """Start `concurrency` streams at once and wait for all of them."""
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s, headers=_AUTH) as client:
        url = f"{base_url}/v1/chat/completions"
        return await asyncio.gather(
            *(_one(client, url, model, tokens, f"s{concurrency}x{n}") for n in range(concurrency))
        )


async def _leave_after(base_url: str, body: bytes, after_tokens: int) -> float:
    """Raw HTTP/1.1 over a socket, closed after `after_tokens` tokens: a real disconnect."""
    url = httpx.URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {url.host}\r\n"
        f"Authorization: {_AUTH['Authorization']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        writer.close()
        raise RuntimeError(f"{base_url} answered {status.decode().strip()!r}")
    seen = 0
    while seen < after_tokens:
        line = await reader.readline()
        if not line:
            break
        seen += b'"content":"t' in line
    writer.transport.abort()  # close now, as a browser tab or a dropped network would
    return time.time()


async def cancel_streams(
    base_url: str, model: str, count: int, after_tokens: int, tag: str
) -> dict[str, float]:
    """Streams that leave after `after_tokens` tokens; returns when each one closed."""
    closed: dict[str, float] = {}
    for n in range(count):  # one at a time: the latency of each, not of a crowd
        request_id = f"{tag}c{n}"
        # Longer than the simulator's streams, within every route's output limit.
        body = orjson.dumps(_body(model, 1_000, request_id))
        closed[request_id] = await _leave_after(base_url, body, after_tokens)
        await asyncio.sleep(0.05)
    return closed
