"""Trace context on the bus, and trace and correlation ids on log lines."""

from __future__ import annotations

import logging

import orjson
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.runtime.logs import JsonFormatter, bind_correlation_id, correlation_scope
from services.runtime.telemetry import (
    TelemetrySettings,
    consumer_span,
    setup_tracing,
    with_trace_context,
)

TRACER = TracerProvider().get_tracer("test")


def test_a_publish_outside_any_span_adds_no_header() -> None:
    assert with_trace_context({"Nats-Msg-Id": "x"}) == {"Nats-Msg-Id": "x"}


def test_a_publish_inside_a_span_carries_its_traceparent() -> None:
    with TRACER.start_as_current_span("publisher") as span:
        headers = with_trace_context({"Nats-Msg-Id": "x"})
    context = span.get_span_context()
    version, trace_id, span_id, _flags = headers["traceparent"].split("-")
    assert version == "00"
    assert trace_id == trace.format_trace_id(context.trace_id)
    assert span_id == trace.format_span_id(context.span_id)
    assert headers["Nats-Msg-Id"] == "x"


def test_the_consumer_continues_the_publishers_trace() -> None:
    with TRACER.start_as_current_span("publisher") as span:
        headers = with_trace_context({})
    with consumer_span("generator", "tokenbus.v1.chat.request", headers):
        inside = trace.get_current_span().get_span_context()
    assert inside.trace_id == span.get_span_context().trace_id


def test_a_message_without_trace_context_starts_no_trace_when_tracing_is_off() -> None:
    with consumer_span("usage", "tokenbus.v1.turn.x", None):
        assert not trace.get_current_span().get_span_context().is_valid


def test_tracing_stays_off_without_an_endpoint() -> None:
    assert setup_tracing("test", TelemetrySettings(endpoint=None)) is False


def log_line(message: str) -> dict[str, object]:
    record = logging.LogRecord("tokenbus.test", logging.INFO, __file__, 1, message, None, None)
    line: dict[str, object] = orjson.loads(JsonFormatter("test").format(record))
    return line


def test_log_lines_inside_a_span_carry_its_trace_and_span_ids() -> None:
    with TRACER.start_as_current_span("work") as span:
        line = log_line("inside")
    assert line["trace_id"] == trace.format_trace_id(span.get_span_context().trace_id)
    assert line["span_id"] == trace.format_span_id(span.get_span_context().span_id)
    assert "trace_id" not in log_line("outside")


def test_log_lines_carry_the_correlation_id_of_the_work_at_hand() -> None:
    with correlation_scope("req-123"):
        assert log_line("inside")["correlation_id"] == "req-123"
    assert "correlation_id" not in log_line("outside")
    bind_correlation_id("req-456")
    try:
        assert log_line("bound")["correlation_id"] == "req-456"
    finally:
        bind_correlation_id(None)
