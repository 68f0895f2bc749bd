"""A job's status, result and error follow from its turn's events alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import FinishReason, TokenLogprob, TurnCompleted, TurnDelta, TurnFailed, TurnUsage
from services.gateway.jobs.models import JobRecord
from services.gateway.jobs.status import job_view, outcome_of
from services.gateway.turns.items import TurnEvent

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DEADLINE = CREATED + timedelta(seconds=120)
JOB = JobRecord(
    id="t1",
    created_at=CREATED,
    model="m",
    conversation_id="t1",
    turn_id="t1",
    correlation_id="c1",
    deadline_at=DEADLINE,
)
SOON = CREATED + timedelta(seconds=1)
TURN: dict[str, Any] = {"correlation_id": "c1", "conversation_id": "t1", "turn_id": "t1"}


def delta(seq: int, text: str, attempt: int = 1) -> TurnDelta:
    return TurnDelta(**TURN, seq=seq, attempt=attempt, text=text)


def usage(seq: int, attempt: int = 1) -> TurnUsage:
    return TurnUsage(
        **TURN, seq=seq, attempt=attempt, model="m", provider_model="p",
        input_tokens=7, output_tokens=2,
    )  # fmt: skip


def completed(seq: int, finish: FinishReason = "stop", attempt: int = 1) -> TurnCompleted:
    return TurnCompleted(
        **TURN, seq=seq, attempt=attempt, model="m", finish_reason=finish,
        occurred_at=CREATED + timedelta(seconds=3),
    )  # fmt: skip


def test_a_job_without_events_is_queued() -> None:
    view = job_view(JOB, [], SOON)
    assert view == {
        "id": "t1",
        "object": "job",
        "status": "queued",
        "created_at": int(CREATED.timestamp()),
        "model": "m",
        "result": None,
        "error": None,
        "webhook": None,
    }


def test_a_job_with_text_but_no_final_event_is_running() -> None:
    view = job_view(JOB, [delta(1, "Hel"), delta(2, "lo")], SOON)
    assert view["status"] == "running"
    assert view["result"] is None


def test_a_completed_job_carries_the_chat_completion_as_openai_returns_it() -> None:
    events: list[TurnEvent] = [delta(1, "Hel"), delta(2, "lo"), usage(3), completed(4)]
    view = job_view(JOB, events, SOON)
    assert view["status"] == "completed"
    assert view["error"] is None
    result = view["result"]
    assert result["id"] == "chatcmpl-t1"
    assert result["object"] == "chat.completion"
    assert result["created"] == int(CREATED.timestamp()) + 3
    assert result["choices"][0]["message"]["content"] == "Hello"
    assert result["choices"][0]["finish_reason"] == "stop"
    assert result["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}


def test_the_same_events_give_the_same_body_whenever_they_are_read() -> None:
    events: list[TurnEvent] = [delta(1, "a"), completed(2)]
    assert job_view(JOB, events, SOON) == job_view(JOB, events, SOON + timedelta(hours=1))


def test_a_failed_job_carries_the_safe_error_and_no_result() -> None:
    failure = TurnFailed(**TURN, seq=2, code="rate_limited", message="Too many requests.")
    view = job_view(JOB, [delta(1, "x"), failure], SOON)
    assert view["status"] == "failed"
    assert view["result"] is None
    assert view["error"] == {"code": "rate_limited", "message": "Too many requests."}


def test_a_cancelled_job_keeps_its_partial_text() -> None:
    view = job_view(JOB, [delta(1, "part"), completed(2, "cancelled")], SOON)
    assert view["status"] == "cancelled"
    assert view["result"]["choices"][0]["message"]["content"] == "part"


def test_a_restarted_turn_drops_the_text_of_the_attempt_that_died() -> None:
    events: list[TurnEvent] = [
        delta(1, "lost "),
        delta(1, "kept", attempt=2),
        usage(2, attempt=2),
        completed(3, attempt=2),
    ]
    outcome = outcome_of(events)
    assert outcome.status == "completed"
    assert outcome.text == "kept"


def test_duplicate_events_are_counted_once() -> None:
    outcome = outcome_of([delta(1, "a"), delta(1, "a"), delta(2, "b"), completed(3)])
    assert outcome.text == "ab"


def test_the_first_final_event_decides_even_if_a_later_attempt_follows() -> None:
    events: list[TurnEvent] = [delta(1, "first"), completed(2), delta(1, "second", attempt=2)]
    assert outcome_of(events).text == "first"


def test_a_job_past_its_deadline_without_a_final_event_has_timed_out() -> None:
    late = DEADLINE + timedelta(seconds=6)
    for events in ([], [delta(1, "a")]):
        view = job_view(JOB, events, late)
        assert view["status"] == "failed"
        assert view["error"]["code"] == "timeout"


def test_a_finished_job_stays_finished_after_its_deadline() -> None:
    late = DEADLINE + timedelta(days=1)
    assert job_view(JOB, [delta(1, "a"), completed(2)], late)["status"] == "completed"


def test_the_webhook_shows_only_when_the_job_has_one() -> None:
    hooked = JOB.model_copy(
        update={"webhook_url": "http://h/x", "webhook_status": "delivered", "webhook_attempts": 2}
    )
    view = job_view(hooked, [], SOON)
    assert view["webhook"] == {"status": "delivered", "attempts": 2}
    assert "http://h/x" not in str(view)


def test_a_job_that_asked_for_logprobs_carries_them_in_its_result() -> None:
    token = TokenLogprob(token="Hi", logprob=-0.5)
    events = [
        TurnDelta(**TURN, seq=1, text="Hi", logprobs=(token,)),
        usage(2),
        completed(3),
    ]
    result = job_view(JOB, events, SOON)["result"]
    assert result["choices"][0]["logprobs"] == {
        "content": [{"token": "Hi", "logprob": -0.5, "bytes": None, "top_logprobs": []}],
        "refusal": None,
    }
