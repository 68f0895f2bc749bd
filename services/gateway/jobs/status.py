"""A job's status, result and error, derived from its turn's events (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from contracts import TokenLogprob, ToolCall, TurnCompleted, TurnFailed, TurnUsage
from services.gateway.jobs.models import JobRecord
from services.gateway.openai.wire import completion_body, output_mark
from services.gateway.turns.items import TurnCursor, TurnEvent, TurnTranscript, interrupted

__all__ = ["JobError", "JobStatus", "TurnOutcome", "job_body", "job_view", "outcome_of"]

JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]

# The chat path's patience past the deadline (services.gateway.turns.live), for
# the case where no generator is alive to say the turn timed out.
_DEADLINE_GRACE = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class JobError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """Where a turn stands: its text so far and, once it ended, how."""

    status: JobStatus
    text: str = ""
    usage: TurnUsage | None = None
    final: TurnCompleted | None = None
    error: JobError | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()


def outcome_of(events: Iterable[TurnEvent]) -> TurnOutcome:
    """Fold events in stream order; the first final event decides, as for every reader."""
    cursor = TurnCursor()
    transcript = TurnTranscript()
    started = False
    for event in events:
        for item in cursor.admit(event):
            started = True
            transcript.add(item)
            if isinstance(item, TurnFailed):
                return TurnOutcome("failed", transcript.text, transcript.usage, None, _error(item))
            if isinstance(item, TurnCompleted):
                status: JobStatus = (
                    "cancelled" if item.finish_reason == "cancelled" else "completed"
                )
                return TurnOutcome(
                    status,
                    transcript.text,
                    transcript.usage,
                    item,
                    None,
                    transcript.tool_calls,
                    transcript.logprobs,
                )
        lost = cursor.held_final()
        if lost is not None:  # its final event came past a lost one: never a short answer
            failure = interrupted(lost)
            return TurnOutcome("failed", transcript.text, transcript.usage, None, _error(failure))
    status = "running" if started else "queued"
    return TurnOutcome(status, transcript.text, transcript.usage)


def job_view(job: JobRecord, events: Iterable[TurnEvent], now: datetime) -> dict[str, Any]:
    """The body of GET /v1/jobs/{id}, which is also what the webhook receives."""
    outcome = outcome_of(events)
    if outcome.status in ("queued", "running") and _overdue(job, now):
        outcome = TurnOutcome(
            "failed", error=JobError("timeout", "No answer arrived before the deadline.")
        )
    return job_body(job, outcome)


def job_body(job: JobRecord, outcome: TurnOutcome) -> dict[str, Any]:
    return {
        "id": job.id,
        "object": "job",
        "status": outcome.status,
        "created_at": int(job.created_at.timestamp()),
        "model": job.model,
        "result": _result(job, outcome),
        "error": None
        if outcome.error is None
        else {"code": outcome.error.code, "message": outcome.error.message},
        "webhook": None
        if job.webhook_url is None
        else {"status": job.webhook_status, "attempts": job.webhook_attempts},
    }


def _result(job: JobRecord, outcome: TurnOutcome) -> dict[str, Any] | None:
    final = outcome.final
    if final is None:
        return None
    body = completion_body(
        f"chatcmpl-{job.turn_id}",
        final.model,
        outcome.text,
        final.finish_reason,
        outcome.usage,
        tool_calls=outcome.tool_calls,
        mark=output_mark(final),
        logprobs=outcome.logprobs,
    )
    # When the answer was made, not when it was read: every GET and the webhook agree.
    body["created"] = int(final.occurred_at.timestamp())
    return body


def _error(failure: TurnFailed) -> JobError:
    return JobError(failure.code, failure.message)


def _overdue(job: JobRecord, now: datetime) -> bool:
    return job.deadline_at is not None and now > job.deadline_at + _DEADLINE_GRACE
