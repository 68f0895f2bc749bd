"""A reader's cursor: events in seq order, gaps held back, restarts announced."""

from __future__ import annotations

from contracts import TurnCompleted, TurnDelta, TurnEvent
from services.gateway.turns.items import Reset, TurnCursor, TurnItem, interrupted


def delta(seq: int, attempt: int = 1) -> TurnDelta:
    return TurnDelta(
        correlation_id="c", conversation_id="conv", turn_id="t", seq=seq, attempt=attempt,
        text=f"<{attempt}.{seq}>",
    )  # fmt: skip


def done(seq: int, attempt: int = 1) -> TurnCompleted:
    return TurnCompleted(
        correlation_id="c", conversation_id="conv", turn_id="t", seq=seq, attempt=attempt,
        model="m", finish_reason="stop",
    )  # fmt: skip


def feed(cursor: TurnCursor, *events: TurnEvent) -> list[TurnItem]:
    return [item for event in events for item in cursor.admit(event)]


def seqs(items: list[TurnItem]) -> list[object]:
    return [("reset", i.attempt) if isinstance(i, Reset) else i.seq for i in items]


def test_in_order_events_pass_and_repeats_are_dropped() -> None:
    cursor = TurnCursor()
    assert seqs(feed(cursor, delta(1), delta(2), delta(2), delta(1), delta(3))) == [1, 2, 3]
    assert not cursor.gap
    assert cursor.position == (1, 3)


def test_an_event_past_a_missing_one_is_held_until_the_gap_fills() -> None:
    cursor = TurnCursor()
    assert seqs(feed(cursor, delta(1), delta(3), delta(4))) == [1]
    assert cursor.gap
    assert cursor.position == (1, 1)
    assert seqs(feed(cursor, delta(2))) == [2, 3, 4]
    assert not cursor.gap
    assert cursor.position == (1, 4)


def test_a_final_event_past_a_gap_is_held_and_named() -> None:
    cursor = TurnCursor()
    assert seqs(feed(cursor, delta(1), delta(3), done(4))) == [1]
    final = cursor.held_final()
    assert final is not None
    assert final.seq == 4
    failure = interrupted(final)
    assert (failure.code, failure.retryable, failure.seq) == ("stream_interrupted", True, 4)


def test_no_final_is_named_while_the_turn_is_whole() -> None:
    cursor = TurnCursor()
    feed(cursor, delta(1), done(2))
    assert cursor.held_final() is None


def test_a_new_attempt_resets_and_forgets_what_the_old_one_held() -> None:
    cursor = TurnCursor()
    items = feed(cursor, delta(1), delta(3), delta(1, attempt=2), delta(2), delta(2, attempt=2))
    assert seqs(items) == [1, ("reset", 2), 1, 2]
    assert not cursor.gap


def test_a_resumed_reader_gets_only_what_came_after_its_position() -> None:
    cursor = TurnCursor(after=(1, 2))
    assert seqs(feed(cursor, delta(1), delta(2), delta(3))) == [3]
    assert seqs(feed(cursor, delta(1, attempt=2))) == [("reset", 2), 1]
