"""Adaptive coalescing: alone when nothing is in flight, merged while an ack is awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from contracts import ChatMessage, ChatRequest, TokenLogprob, ToolCallDelta, TurnDelta
from services.generator.coalesce import DeltaCoalescer, merge_chunks
from services.generator.ports import StreamEnd, TextChunk, TurnEventOut
from services.generator.service import generate_turn


class AckingSink:
    """A sink whose acks come back `ack_s` after each publish, as the bus's would."""

    def __init__(self, ack_s: float) -> None:
        self.ack_s = ack_s
        self.deltas: list[TurnDelta] = []
        self.finals: list[TurnEventOut] = []
        self.others: list[TurnEventOut] = []

    async def emit(self, request: ChatRequest, event: TurnEventOut) -> asyncio.Future[object]:
        if isinstance(event, TurnDelta):
            self.deltas.append(event)
        else:
            self.others.append(event)
        ack: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(self.ack_s, ack.set_result, None)
        return ack

    async def emit_final(self, request: ChatRequest, event: TurnEventOut) -> None:
        self.finals.append(event)


class PacedProvider:
    """`tokens` chunks `t0 `, `t1 `, ..., `gap_s` apart (0: a burst, all in one read)."""

    def __init__(self, tokens: int, gap_s: float, logprobs: bool = False) -> None:
        self.tokens, self.gap_s, self.logprobs = tokens, gap_s, logprobs

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[TextChunk | StreamEnd]:
        for n in range(self.tokens):
            if self.gap_s:
                await asyncio.sleep(self.gap_s)
            lp = (TokenLogprob(token=f"t{n} ", logprob=-n / 10),) if self.logprobs else ()
            yield TextChunk(f"t{n} ", logprobs=lp)
        yield StreamEnd("stop", "up", 3, self.tokens)


def a_request() -> ChatRequest:
    return ChatRequest(
        correlation_id="corr",
        gateway_id="gw",
        conversation_id="conv",
        turn_id="turn",
        model="m",
        messages=(ChatMessage(role="user", content="hi"),),
    )


async def test_a_fast_burst_travels_in_fewer_events_than_tokens_each_token_once_in_order() -> None:
    sink = AckingSink(ack_s=0.003)
    await generate_turn(a_request(), 1, PacedProvider(200, 0.0, logprobs=True), sink,
                        coalesce_window_s=0.01)  # fmt: skip

    assert 1 < len(sink.deltas) < 200 / 4
    text = "".join(d.text for d in sink.deltas)
    assert text == "".join(f"t{n} " for n in range(200))
    assert [t.token for d in sink.deltas for t in d.logprobs] == [f"t{n} " for n in range(200)]
    # The first token did not wait for anything: it went out alone.
    assert sink.deltas[0].text == "t0 "
    seqs = [e.seq for e in [*sink.deltas, *sink.others, *sink.finals]]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_a_slow_stream_sends_every_token_at_once_in_its_own_event() -> None:
    sink = AckingSink(ack_s=0.001)
    await generate_turn(a_request(), 1, PacedProvider(12, 0.01), sink, coalesce_window_s=0.01)

    assert [d.text for d in sink.deltas] == [f"t{n} " for n in range(12)]


async def test_a_token_waits_no_longer_than_the_window_when_acks_are_slow() -> None:
    sink = AckingSink(ack_s=1.0)
    sent: list[float] = []
    loop = asyncio.get_running_loop()

    async def emit(chunk: TextChunk) -> asyncio.Future[object]:
        sent.append(loop.time())
        return await sink.emit(a_request(), TurnDelta.model_construct(text=chunk.text))

    out = DeltaCoalescer(emit, window_s=0.02)
    started = loop.time()
    await out.add(TextChunk("a"))
    await out.add(TextChunk("b"))
    await out.add(TextChunk("c"))
    await asyncio.sleep(0.1)
    await out.drain()

    assert [d.text for d in sink.deltas] == ["a", "bc"]
    assert sent[1] - started < 0.06


async def test_text_and_tool_call_pieces_never_share_an_event() -> None:
    first = ToolCallDelta(index=0, id="c1", name="f", arguments='{"a"')
    rest = ToolCallDelta(index=0, arguments=":1}")
    merged = merge_chunks([TextChunk("", tool_calls=(first,)), TextChunk("", tool_calls=(rest,))])
    assert merged.tool_calls == (first, rest)

    sink = AckingSink(ack_s=0.05)

    async def emit(chunk: TextChunk) -> asyncio.Future[object]:
        event = TurnDelta.model_construct(text=chunk.text, tool_calls=chunk.tool_calls)
        return await sink.emit(a_request(), event)

    out = DeltaCoalescer(emit, window_s=0.01)
    calls = (TextChunk("", tool_calls=(first,)), TextChunk("", tool_calls=(rest,)))
    for chunk in (TextChunk("x"), TextChunk("y"), TextChunk("z"), *calls):
        await out.add(chunk)
    await out.drain()

    assert [(d.text, len(d.tool_calls)) for d in sink.deltas] == [("x", 0), ("yz", 0), ("", 2)]
