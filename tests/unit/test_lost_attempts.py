"""A restarted turn meters what its dead earlier attempt relayed."""

from __future__ import annotations

from contracts import ChatMessage, ChatRequest, TurnCompleted, TurnDelta, TurnUsage
from services.generator.lost_attempts import meter_lost_attempts, unmetered_attempts
from services.generator.ports import TurnEventOut


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
    await meter_lost_attempts(request(), 2, history, sink, estimate_prompt=7)
    [report] = sink.finals
    assert isinstance(report, TurnUsage)
    assert (report.attempt, report.seq) == (1, 3)
    assert (report.input_tokens, report.output_tokens, report.estimated) == (7, 2, True)
    assert report.key_id == "k1"


async def test_a_first_attempt_reads_nothing_and_a_failed_read_does_not_stop_the_turn() -> None:
    sink = Sink()
    await meter_lost_attempts(request(), 1, BrokenHistory(), sink, estimate_prompt=7)
    await meter_lost_attempts(request(), 2, BrokenHistory(), sink, estimate_prompt=7)
    assert sink.finals == []
