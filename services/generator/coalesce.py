"""Adaptive coalescing of a turn's chunks into delta events.

A chunk goes out at once when nothing is in flight: the first token and every
token of a slow stream pay nothing. A chunk that arrives while the previous
delta is still unacknowledged waits, with whatever else arrives, until that ack
comes back or `window_s` after it was sent, whichever is first; then everything
waiting travels as one event. Under load acks come back later, so more tokens
share an event and the per-event cost (encoding, the bus, the gateway's write) is
paid less often; an idle machine sends one event per token, as before.

Text (with its tokens' logprobs, in order) merges with text; pieces of tool calls
merge with pieces of tool calls. A chunk of the other kind, or one carrying both,
ends the batch first, so within a turn the order of text and calls is the order
the model made them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from services.generator.ports import TextChunk

__all__ = ["DeltaCoalescer", "merge_chunks"]

Emit = Callable[[TextChunk], Awaitable[Awaitable[object] | None]]
"""Publish one delta; returns its ack (to wait on before the next) or None (nothing to wait)."""


class DeltaCoalescer:
    """Feeds one provider call's chunks to `emit`, merging those that arrive while one is in flight.

    `add` is called from the provider-read loop and only waits when it publishes
    a chunk itself (nothing in flight); `drain` publishes whatever still waits, and
    must be awaited before anything else of the turn is published.
    """

    def __init__(self, emit: Emit, window_s: float) -> None:
        self._emit = emit
        self._window_s = window_s
        self._pending: list[TextChunk] = []
        self._ack: asyncio.Future[object] | None = None
        self._sent_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._error: BaseException | None = None
        self.events = 0
        """How many delta events went out."""

    async def add(self, chunk: TextChunk) -> None:
        self._raise_error()
        if self._task is None and not self._pending and not self._in_flight():
            await self._send(chunk)
            return
        self._pending.append(chunk)
        if self._task is None and self._timer is None:
            self._arm()

    async def drain(self) -> None:
        """Publish what waits (without waiting for the gate) and return when all went out."""
        self._disarm()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)
        self._raise_error()
        while self._pending:
            await self._send(self._take())

    def abandon(self) -> None:
        """Stop without publishing (the turn's task is going away)."""
        self._disarm()
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()

    def _in_flight(self) -> bool:
        ack = self._ack
        if ack is None or ack.done():
            return False
        return asyncio.get_running_loop().time() - self._sent_at < self._window_s

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        ack = self._ack
        if ack is None or ack.done():
            self._kick()
            return
        ack.add_done_callback(self._on_ack)
        self._timer = loop.call_at(self._sent_at + self._window_s, self._kick)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_ack(self, _: object) -> None:
        if self._timer is not None:  # still waiting for this gate
            self._kick()

    def _kick(self) -> None:
        self._disarm()
        if self._task is None and self._pending:
            self._task = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                await self._send(self._take())
                ack = self._ack
                if not self._pending or ack is None or ack.done():
                    continue
                # Tokens keep arriving: gather them until this one's ack (or the window).
                left = self._sent_at + self._window_s - asyncio.get_running_loop().time()
                if left > 0:
                    await asyncio.wait((ack,), timeout=left)
        except Exception as exc:
            self._error = exc
        finally:
            self._task = None

    async def _send(self, chunk: TextChunk) -> None:
        ack = await self._emit(chunk)
        self.events += 1
        self._sent_at = asyncio.get_running_loop().time()
        self._ack = ack if isinstance(ack, asyncio.Future) else None

    def _take(self) -> TextChunk:
        """The longest run of waiting chunks of one kind, merged."""
        pending = self._pending
        n = 1
        while n < len(pending) and _joins(pending[n - 1], pending[n]):
            n += 1
        batch, self._pending = pending[:n], pending[n:]
        return merge_chunks(batch)

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _kind(chunk: TextChunk) -> str:
    if chunk.tool_calls:
        return "mixed" if chunk.text else "calls"
    return "text"


def _joins(before: TextChunk, after: TextChunk) -> bool:
    kind = _kind(before)
    return kind != "mixed" and kind == _kind(after)


def merge_chunks(chunks: list[TextChunk]) -> TextChunk:
    """One chunk holding `chunks` in order: their text joined, their pieces and logprobs listed."""
    if len(chunks) == 1:
        return chunks[0]
    return TextChunk(
        "".join(c.text for c in chunks),
        tool_calls=tuple(p for c in chunks for p in c.tool_calls),
        logprobs=tuple(t for c in chunks for t in c.logprobs),
    )
