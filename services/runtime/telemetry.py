"""Tracing: OTLP export when an endpoint is configured, and W3C trace context on the bus.

Without `OTEL_EXPORTER_OTLP_ENDPOINT` nothing is set up: OpenTelemetry's API stays
on its no-op provider, spans cost a context lookup, and no `traceparent` header is
written (an incoming one is passed on, so a trace crosses an untraced service).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, StatusCode
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "TelemetrySettings",
    "consumer_span",
    "mark_failed",
    "setup_tracing",
    "with_trace_context",
]

_tracer = trace.get_tracer("tokenbus")


class TelemetrySettings(BaseSettings):
    """The standard OpenTelemetry variable that turns export on; the SDK reads the
    other OTEL_* variables itself (OTEL_BSP_SCHEDULE_DELAY, OTEL_EXPORTER_OTLP_HEADERS, ...)."""

    model_config = SettingsConfigDict(env_prefix="OTEL_EXPORTER_OTLP_", extra="ignore")

    endpoint: str | None = None


def setup_tracing(service: str, settings: TelemetrySettings | None = None) -> bool:
    """Export this process's spans as `tokenbus-<service>`; True when tracing is on."""
    settings = settings or TelemetrySettings()
    if not settings.endpoint:
        return False
    # Imported here, so a process that does not trace never loads the SDK or the exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {
            "service.name": f"tokenbus-{service}",
            "service.namespace": "tokenbus",
            "service.instance.id": uuid.uuid4().hex,
        }
    )
    # The provider flushes its batch at interpreter exit (atexit), so a stopped
    # service still sends its last spans.
    provider = TracerProvider(resource=resource)
    # The exporter reads the endpoint itself and appends /v1/traces.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def with_trace_context(headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus the current span's `traceparent` (and `tracestate`), when there is one."""
    propagate.inject(headers)
    return headers


@contextmanager
def consumer_span(consumer: str, subject: str, headers: Mapping[str, str] | None) -> Iterator[Span]:
    """A CONSUMER span for one bus message, child of the span that published it."""
    parent = propagate.extract(dict(headers or {}))
    with _tracer.start_as_current_span(
        f"{consumer} process",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": consumer,
            "messaging.destination.name": subject,
        },
    ) as span:
        yield span


def mark_failed(reason: str) -> None:
    """Flag the current span as failed; `reason` must be a short category, never user data."""
    trace.get_current_span().set_status(StatusCode.ERROR, reason)
