"""One turn: stream from the provider, publish what it makes, end with usage and a final event."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from datetime import datetime

from contracts import (
    ChatRequest,
    TurnCompleted,
    TurnDelta,
    TurnFailed,
    TurnUsage,
    utc_now,
)
from services.generator.errors import ProviderError
from services.generator.lost_attempts import earlier_events, meter_lost_attempts, turn_ended
from services.generator.ports import EventSink, ModelProvider, StreamEnd, TextChunk, TurnHistory

__all__ = ["generate_turn"]

log = logging.getLogger("tokenbus.generator")

_BYTES_PER_TOKEN = 4


async def generate_turn(
    request: ChatRequest,
    attempt: int,
    provider: ModelProvider,
    sink: EventSink,
    was_cancelled: Callable[[], bool] = lambda: False,
    now: datetime | None = None,
    history: TurnHistory | None = None,
) -> None:
    """Produce one attempt of a turn; always ends with TurnCompleted or TurnFailed.

    If the task is cancelled and `was_cancelled()` says the client asked for it,
    the turn ends as completed with finish reason "cancelled", keeping (and
    metering) what was generated; any other cancellation propagates.
    """
    seq = itertools.count(1)

    def envelope() -> dict[str, object]:
        return {
            "correlation_id": request.correlation_id,
            "conversation_id": request.conversation_id,
            "turn_id": request.turn_id,
            "tenant_id": request.tenant_id,
            "user_id": request.user_id,
            "attempt": attempt,
            "seq": next(seq),
        }

    async def meter(usage: dict[str, object]) -> None:
        await sink.emit(request, TurnUsage(**envelope(), key_id=request.key_id, **usage))

    earlier = [] if history is None else await earlier_events(request, attempt, history)
    if turn_ended(earlier):
        log.info("turn already ended; redelivery dropped", extra={"turn_id": request.turn_id})
        return

    remaining = _seconds_left(request, now or utc_now())
    if remaining is not None and remaining <= 0:
        await meter(_nothing_used(request))
        await sink.emit_final(
            request,
            TurnFailed(
                **envelope(), code="timeout", message="The request expired before it started."
            ),
        )
        return

    if was_cancelled():
        await meter(_nothing_used(request))
        await sink.emit_final(
            request, TurnCompleted(**envelope(), model=request.model, finish_reason="cancelled")
        )
        return

    if earlier:
        await meter_lost_attempts(
            request, earlier, attempt, sink, _estimated_prompt_tokens(request)
        )

    chunks = 0
    prompt: TextChunk | None = None  # the chunk that told the prompt's size, if one did
    end: StreamEnd | None = None
    failure: ProviderError | None = None
    cancelled = False
    try:
        async with asyncio.timeout(remaining):
            async for item in provider.stream(request):
                if isinstance(item, TextChunk):
                    chunks += 1
                    if prompt is None and item.input_tokens is not None:
                        prompt = item
                    await sink.emit(
                        request,
                        TurnDelta(**envelope(), text=item.text, tool_calls=item.tool_calls),
                    )
                else:
                    end = item
    except ProviderError as exc:
        log.warning("provider failed", extra={"turn_id": request.turn_id, "code": exc.code})
        failure = exc
    except TimeoutError:
        failure = ProviderError("timeout", "The model did not finish before the deadline.")
    except Exception as exc:
        # Whatever broke (a malformed chunk, an SDK surprise), the turn must still
        # end with a final event, or its client would wait until the deadline.
        log.error(
            "provider raised an unexpected error",
            extra={"turn_id": request.turn_id, "error_type": type(exc).__name__},
        )
        failure = ProviderError("upstream_error", "The model failed.")
    except asyncio.CancelledError:
        if not was_cancelled():
            raise
        # The client's cancel, not a shutdown: swallow it and finish the turn cleanly.
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        cancelled = True

    await meter(_usage(request, end, chunks, prompt))
    if failure is not None:
        await sink.emit_final(
            request,
            TurnFailed(
                **envelope(),
                code=failure.code,
                message=failure.message,
                retryable=failure.retryable,
            ),
        )
        return
    finish = "cancelled" if cancelled or end is None else end.finish_reason
    served_by = (end.served_by if end else None) or request.model
    from_cache = end is not None and end.from_cache
    await sink.emit_final(
        request,
        TurnCompleted(**envelope(), model=served_by, finish_reason=finish, from_cache=from_cache),
    )


def _seconds_left(request: ChatRequest, now: datetime) -> float | None:
    if request.deadline_at is None:
        return None
    return (request.deadline_at - now).total_seconds()


def _usage(
    request: ChatRequest, end: StreamEnd | None, chunks: int, prompt: TextChunk | None = None
) -> dict[str, object]:
    """Exact counts when the provider gave them; else an estimate, marked as such.

    A stream cut short (cancelled, broken) never gets the provider's counts, yet
    the provider read the whole prompt and made every chunk we relayed: both are
    billed, so both are metered: the prompt as the provider counted it when it said
    so early, else estimated; the output as the chunks relayed.
    """
    if end is not None and end.input_tokens is not None and end.output_tokens is not None:
        return {
            "model": end.served_by or request.model,
            "provider_model": end.provider_model,
            "input_tokens": end.input_tokens,
            "output_tokens": end.output_tokens,
            "cached_input_tokens": end.cached_input_tokens,
            "from_cache": end.from_cache,
        }
    if chunks == 0:
        return _nothing_used(request)
    told = prompt.input_tokens if prompt is not None else None
    return {
        "model": request.model,
        "provider_model": end.provider_model if end else request.model,
        "input_tokens": told if told is not None else _estimated_prompt_tokens(request),
        "cached_input_tokens": prompt.cached_input_tokens if prompt is not None else 0,
        "output_tokens": chunks,
        "estimated": True,
    }


def _nothing_used(request: ChatRequest) -> dict[str, object]:
    """A turn that made nothing still reports so: its budget reservation is settled now."""
    return {
        "model": request.model,
        "provider_model": request.model,
        "input_tokens": 0,
        "output_tokens": 0,
    }


def _estimated_prompt_tokens(request: ChatRequest) -> int:
    """About four UTF-8 bytes per token, plus a few for each message's chat template."""
    return sum(4 + len(m.content.encode()) // _BYTES_PER_TOKEN for m in request.messages)
