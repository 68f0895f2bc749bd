"""The generator's turn logic, with fakes at its two Protocol seams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from contracts import (
    ChatMessage,
    ChatRequest,
    TokenLogprob,
    TurnCompleted,
    TurnDelta,
    TurnFailed,
    TurnUsage,
    utc_now,
)
from services.generator.cancellation import CancelRegistry
from services.generator.errors import ProviderError
from services.generator.ports import StreamEnd, TextChunk, TurnEventOut
from services.generator.service import generate_turn


class ScriptedProvider:
    def __init__(self, *items: TextChunk | StreamEnd | ProviderError) -> None:
        self.items = items

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[TextChunk | StreamEnd]:
        for item in self.items:
            if isinstance(item, ProviderError):
                raise item
            yield item


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, TurnEventOut]] = []

    async def emit(self, request: ChatRequest, event: TurnEventOut) -> None:
        self.events.append(("emit", event))

    async def emit_final(self, request: ChatRequest, event: TurnEventOut) -> None:
        self.events.append(("final", event))


def a_request(deadline_s: float | None = 60) -> ChatRequest:
    return ChatRequest(
        correlation_id="corr",
        gateway_id="gw",
        conversation_id="conv",
        turn_id="turn",
        model="public-name",
        messages=(ChatMessage(role="user", content="hi"),),
        deadline_at=None if deadline_s is None else utc_now() + timedelta(seconds=deadline_s),
    )


async def test_publishes_deltas_then_exact_usage_then_completion_in_sequence() -> None:
    sink = RecordingSink()
    provider = ScriptedProvider(TextChunk("Hel"), TextChunk("lo"), StreamEnd("stop", "up-id", 5, 2))
    await generate_turn(a_request(), 1, provider, sink)

    kinds = [type(e).__name__ for _, e in sink.events]
    assert kinds == ["TurnDelta", "TurnDelta", "TurnUsage", "TurnCompleted"]
    assert [e.seq for _, e in sink.events] == [1, 2, 3, 4]
    assert [how for how, _ in sink.events][-1] == "final"
    usage = sink.events[2][1]
    assert isinstance(usage, TurnUsage)
    assert (usage.input_tokens, usage.output_tokens, usage.estimated) == (5, 2, False)
    assert usage.model == "public-name"
    assert usage.provider_model == "up-id"


async def test_a_stream_that_breaks_mid_way_ends_in_failure_not_completion() -> None:
    sink = RecordingSink()
    provider = ScriptedProvider(
        TextChunk("a"), TextChunk("b"), ProviderError("upstream_error", "broke", retryable=True)
    )
    await generate_turn(a_request(), 1, provider, sink)

    last = sink.events[-1][1]
    assert isinstance(last, TurnFailed)
    assert (last.code, last.message) == ("upstream_error", "broke")
    assert not any(isinstance(e, TurnCompleted) for _, e in sink.events)
    # What was generated before the break is still metered, marked as counted.
    usage = next(e for _, e in sink.events if isinstance(e, TurnUsage))
    assert (usage.output_tokens, usage.estimated) == (2, True)
    assert [e.seq for _, e in sink.events] == [1, 2, 3, 4]


async def test_a_failure_before_any_token_reports_zero_usage_before_failing() -> None:
    sink = RecordingSink()
    await generate_turn(
        a_request(), 1, ScriptedProvider(ProviderError("rate_limited", "slow")), sink
    )
    assert [type(e).__name__ for _, e in sink.events] == ["TurnUsage", "TurnFailed"]
    usage = sink.events[0][1]
    assert isinstance(usage, TurnUsage)
    assert (usage.input_tokens, usage.output_tokens, usage.estimated) == (0, 0, False)


async def test_a_stream_cut_short_estimates_the_prompt_it_was_billed_for() -> None:
    sink = RecordingSink()
    request = a_request().model_copy(
        update={"messages": (ChatMessage(role="user", content="x" * 400),)}
    )
    provider = ScriptedProvider(TextChunk("a"), ProviderError("upstream_error", "broke"))
    await generate_turn(request, 1, provider, sink)
    usage = next(e for _, e in sink.events if isinstance(e, TurnUsage))
    assert (usage.input_tokens, usage.output_tokens, usage.estimated) == (104, 1, True)


async def test_a_stream_cut_short_bills_the_prompt_as_the_provider_told_it() -> None:
    sink = RecordingSink()
    provider = ScriptedProvider(
        TextChunk("a", input_tokens=38, cached_input_tokens=30),
        TextChunk("b"),
        ProviderError("upstream_error", "broke"),
    )
    await generate_turn(a_request(), 1, provider, sink)
    usage = next(e for _, e in sink.events if isinstance(e, TurnUsage))
    assert (usage.input_tokens, usage.cached_input_tokens) == (38, 30)
    assert (usage.output_tokens, usage.estimated) == (2, True)


async def test_an_expired_request_is_answered_with_timeout_without_calling_the_model() -> None:
    sink = RecordingSink()
    provider = ScriptedProvider(TextChunk("never"))
    await generate_turn(a_request(deadline_s=-1), 1, provider, sink)
    assert [type(e).__name__ for _, e in sink.events] == ["TurnUsage", "TurnFailed"]
    failed = sink.events[1][1]
    assert isinstance(failed, TurnFailed)
    assert failed.code == "timeout"


async def test_events_carry_the_attempt_number() -> None:
    sink = RecordingSink()
    await generate_turn(a_request(), 3, ScriptedProvider(StreamEnd("stop", "m", 1, 0)), sink)
    assert {e.attempt for _, e in sink.events} == {3}


async def test_a_delta_per_chunk_keeps_the_text_exact() -> None:
    sink = RecordingSink()
    chunks = [TextChunk(t) for t in ("a", " ", "b", "ü", "\n")]
    await generate_turn(
        a_request(), 1, ScriptedProvider(*chunks, StreamEnd("stop", "m", 1, 5)), sink
    )
    text = "".join(e.text for _, e in sink.events if isinstance(e, TurnDelta))
    assert text == "a bü\n"


async def test_each_chunks_logprobs_travel_on_its_delta() -> None:
    sink = RecordingSink()
    hi = (TokenLogprob(token="Hi", logprob=-0.1), TokenLogprob(token="!", logprob=-0.2))
    chunks = [TextChunk("Hi!", logprobs=hi), TextChunk(" ")]
    await generate_turn(
        a_request(), 1, ScriptedProvider(*chunks, StreamEnd("stop", "m", 1, 3)), sink
    )
    deltas = [e for _, e in sink.events if isinstance(e, TurnDelta)]
    assert [d.logprobs for d in deltas] == [hi, ()]
    assert "logprobs" not in deltas[1].model_dump_json()


class EndlessProvider:
    """Yields a chunk, then waits forever, like a slow model; records being closed."""

    def __init__(self) -> None:
        self.closed = False
        self.first_chunk_sent = asyncio.Event()

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[TextChunk | StreamEnd]:
        try:
            yield TextChunk("partial")
            self.first_chunk_sent.set()
            await asyncio.Event().wait()
        finally:
            self.closed = True


async def test_a_client_cancel_closes_the_provider_and_ends_the_turn_as_cancelled() -> None:
    sink = RecordingSink()
    provider = EndlessProvider()
    cancels = CancelRegistry()

    async def run() -> None:
        with cancels.running("turn"):
            await generate_turn(
                a_request(), 1, provider, sink, was_cancelled=lambda: cancels.is_cancelled("turn")
            )

    task = asyncio.create_task(run())
    await provider.first_chunk_sent.wait()
    cancels.cancel("turn")
    await task

    assert provider.closed
    kinds = [type(e).__name__ for _, e in sink.events]
    assert kinds == ["TurnDelta", "TurnUsage", "TurnCompleted"]
    completed = sink.events[-1][1]
    assert isinstance(completed, TurnCompleted)
    assert completed.finish_reason == "cancelled"


async def test_a_shutdown_cancel_is_not_mistaken_for_a_client_cancel() -> None:
    sink = RecordingSink()
    provider = EndlessProvider()
    task = asyncio.create_task(generate_turn(a_request(), 1, provider, sink))
    await provider.first_chunk_sent.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert provider.closed
    # No final event: the request is not acked and will be redelivered.
    assert not any(how == "final" for how, _ in sink.events)


async def test_a_turn_cancelled_while_still_queued_never_calls_the_model() -> None:
    sink = RecordingSink()
    cancels = CancelRegistry()
    cancels.cancel("turn")
    provider = ScriptedProvider(TextChunk("never"))
    await generate_turn(
        a_request(), 1, provider, sink, was_cancelled=lambda: cancels.is_cancelled("turn")
    )
    assert [type(e).__name__ for _, e in sink.events] == ["TurnUsage", "TurnCompleted"]


def test_the_cancel_registry_forgets_old_turns() -> None:
    cancels = CancelRegistry(remember_s=600, max_remembered=2)
    for turn in ("a", "b", "c"):
        cancels.cancel(turn)
    assert not cancels.is_cancelled("a")
    assert cancels.is_cancelled("b")
    assert cancels.is_cancelled("c")


class ExplodingProvider:
    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[TextChunk | StreamEnd]:
        yield TextChunk("a")
        raise ValueError("Expecting value: line 1 column 2 (char 1) sk-SECRET")


async def test_an_unexpected_provider_error_still_ends_the_turn_cleanly() -> None:
    sink = RecordingSink()
    await generate_turn(a_request(), 1, ExplodingProvider(), sink)
    last = sink.events[-1][1]
    assert isinstance(last, TurnFailed)
    assert last.code == "upstream_error"
    assert "SECRET" not in last.message
