"""One JSON object per log line, with whatever `extra=` fields the caller passed.

Every line also carries the correlation id of the request or message being handled
(`bind_correlation_id`) and, inside a span, its `trace_id` and `span_id`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import trace

__all__ = ["bind_correlation_id", "configure_logging", "correlation_scope"]

# Set per request (gateway middleware) or per bus message (worker task); asyncio
# copies it into the tasks each one starts, so their lines carry it too.
_correlation_id: ContextVar[str | None] = ContextVar("tokenbus_correlation_id", default=None)


def bind_correlation_id(value: str | None) -> None:
    """Tag the log lines of the current task (and the tasks it starts) with `value`."""
    _correlation_id.set(value)


@contextmanager
def correlation_scope(value: str) -> Iterator[None]:
    """`bind_correlation_id` for a block, restored afterwards."""
    token = _correlation_id.set(value)
    try:
        yield
    finally:
        _correlation_id.reset(token)


# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured copy of msg
}


_TRACEBACK = "Traceback (most recent call last):"


def _without_traceback(message: str) -> tuple[str, str | None]:
    """A message with a traceback written into it, cut before it; and the error's type.

    uvicorn logs a failed ASGI lifespan so (starlette hands it the formatted
    traceback as the failure's message).
    """
    head, _, trace = message.partition(_TRACEBACK)
    lines = trace.strip().splitlines()
    last = lines[-1] if lines else ""
    name = last.split(":", 1)[0].strip().rsplit(".", 1)[-1]
    text = f"{head.strip()} (traceback left out)" if head.strip() else "(traceback left out)"
    return text, name if name.isidentifier() else None


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        message, traced_type = record.getMessage(), None
        if _TRACEBACK in message:
            message, traced_type = _without_traceback(message)
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": message,
        }
        if (correlation_id := _correlation_id.get()) is not None:
            entry["correlation_id"] = correlation_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = trace.format_trace_id(span.trace_id)
            entry["span_id"] = trace.format_span_id(span.span_id)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        # Tracebacks stay out on purpose: they can carry prompts, keys or provider bodies.
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
        elif traced_type is not None:
            entry["error_type"] = traced_type
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-request access lines from uvicorn and httpx would double every request log, and
    # httpx's carries the upstream's URL (some providers take their key in the query).
    # The SDKs send through httpx2, httpx's fork, which logs under its own name.
    quiet = ("uvicorn.access", "httpx", "httpcore", "httpx2", "httpcore2", "openai", "anthropic")
    for noisy in quiet:
        logging.getLogger(noisy).setLevel(logging.WARNING)
