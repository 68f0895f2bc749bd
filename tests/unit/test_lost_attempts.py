"""A restarted turn meters its dead earlier attempts; a redelivery never redoes a turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from contracts import ChatMessage, ChatRequest, TurnCompleted, TurnDelta, TurnUsage
from services.generator.cancellation import CancelRegistry
from services.generator.handlers import chat_request_handler
from services.generator.lost_attempts import earlier_events, meter_lost_attempts, unmetered_attempts
from services.generator.ports import StreamEnd, TextChunk, TurnEventOut
from services.generator.service import generate_turn
from services.runtime.worker import Delivery


def request() -> ChatRequest:
    return ChatRequest(
        correlation_id="c", gateway_id="gw", conversation_id="conv", turn_id="t",
        model="m", messages=(ChatMessage(role="user", content="hello"),), key_id="k1",
    )  # fmt: skip


def delta(seq: int, attempt: int) -> TurnDelta:
    return TurnDelta(
        correlation_id="c", conversation_id="conv", turn_id="t", seq=seq, attempt=attempt, text="x"
    )


def usage(seq: int, attempt: int) -> TurnUsage:
    return TurnUsage(
        correlation_id="c", conversation_id="conv", turn_id="t", seq=seq, attempt=attempt,
        model="m", provider_model="m", input_tokens=3, output_tokens=2,
    )  # fmt: skip


class History:
    def __init__(self, *events: TurnEventOut) -> None:
        self._events = list(events)

    async def events(self, request: ChatRequest) -> list[TurnEventOut]:
        return self._events


class BrokenHistory:
    async def events(self, request: ChatRequest) -> list[TurnEventOut]:
        raise ConnectionError("bus gone")


class Sink:
    def __init__(self) -> None:
        self.finals: list[TurnEventOut] = []

    async def emit(self, request: ChatRequest, event: TurnEventOut) -> None:
        raise AssertionError("a lost attempt's usage is sent acked")

    async def emit_final(self, request: ChatRequest, event: TurnEventOut) -> None:
        self.finals.append(event)


def test_an_attempt_that_relayed_tokens_without_usage_is_unmetered() -> None:
    events = [delta(1, 1), delta(2, 1), delta(3, 1), delta(1, 2)]
    [lost] = unmetered_attempts(events, before=2)
    assert (lost.attempt, lost.chunks, lost.last_seq) == (1, 3, 3)


def test_metered_or_silent_attempts_are_left_alone() -> None:
    metered = [delta(1, 1), usage(2, 1), delta(1, 2)]
    assert [a.attempt for a in unmetered_attempts(metered, before=3)] == [2]
    assert unmetered_attempts([], before=2) == []
    assert unmetered_attempts([delta(1, 2)], before=2) == []


async def test_the_next_attempt_reports_the_lost_one_estimated_on_its_own_position() -> None:
    sink = Sink()
    history = History(delta(1, 1), delta(2, 1), TurnCompleted(
        correlation_id="c", conversation_id="conv", turn_id="t", seq=9, attempt=3,
        model="m", finish_reason="stop"))  # fmt: skip
    earlier = await earlier_events(request(), 2, history)
    await meter_lost_attempts(request(), earlier, 2, sink, estimate_prompt=7)
    [report] = sink.finals
    assert isinstance(report, TurnUsage)
    assert (report.attempt, report.seq) == (1, 3)
    assert (report.input_tokens, report.output_tokens, report.estimated) == (7, 2, True)
    assert report.key_id == "k1"


async def test_a_first_attempt_reads_nothing_and_a_failed_read_does_not_stop_the_turn() -> None:
    assert await earlier_events(request(), 1, BrokenHistory()) == []
    assert await earlier_events(request(), 2, BrokenHistory()) == []


class Provider:
    def __init__(self) -> None:
        self.calls = 0

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        self.calls += 1
        yield TextChunk(text="again")


async def test_a_redelivered_request_whose_turn_already_ended_is_dropped() -> None:
    # The first attempt finished, but its ack was lost (a leader election): no second end.
    sink, provider = Sink(), Provider()
    history = History(delta(1, 1), usage(2, 1), TurnCompleted(
        correlation_id="c", conversation_id="conv", turn_id="t", seq=3, attempt=1,
        model="m", finish_reason="stop"))  # fmt: skip
    await generate_turn(request(), 2, provider, sink, history=history)
    assert provider.calls == 0
    assert sink.finals == []


class SlowProvider:
    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        self.calls += 1
        await self.release.wait()
        yield TextChunk(text="once")


class CollectingSink:
    def __init__(self) -> None:
        self.events: list[TurnEventOut] = []

    async def emit(self, request: ChatRequest, event: TurnEventOut) -> None:
        self.events.append(event)

    async def emit_final(self, request: ChatRequest, event: TurnEventOut) -> None:
        self.events.append(event)


async def test_a_request_redelivered_while_this_replica_runs_it_waits_for_that_run() -> None:
    provider, sink = SlowProvider(), CollectingSink()
    handle = chat_request_handler(provider, sink, CancelRegistry())

    async def deliver(attempt: int) -> None:
        await handle(request(), Delivery("s", attempt=attempt, stream_sequence=1))

    first = asyncio.create_task(deliver(1))
    await asyncio.sleep(0.01)
    again = asyncio.create_task(deliver(2))
    await asyncio.sleep(0.01)
    assert not again.done()  # acked only once the running attempt is done
    provider.release.set()
    await asyncio.gather(first, again)
    assert provider.calls == 1
    assert sum(isinstance(e, TurnCompleted) for e in sink.events) == 1
