"""The gateway's Prometheus metrics.

Labels are bounded: a route is its template (`/v1/conversations/{conversation_id}`),
never the raw path; a model is a catalog name the gateway already checked; a code
is one of the stable error codes. Never a request, conversation, turn or key id.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from contracts import TurnCompleted, TurnDelta, TurnFailed, TurnUsage
from services.gateway.turns.items import TurnItem
from services.runtime.metrics import LATENCY_BUCKETS, TOKEN_GAP_BUCKETS, TokenTimer

__all__ = [
    "ACTIVE_STREAMS",
    "ERRORS",
    "HTTP_DURATION",
    "HTTP_REQUESTS",
    "TIME_PER_OUTPUT_TOKEN",
    "TIME_TO_FIRST_TOKEN",
    "TURN_FAILURES",
    "TurnTiming",
]

HTTP_REQUESTS = Counter(
    "tokenbus_http_requests_total",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "tokenbus_http_request_duration_seconds",
    "Time from request to the end of the response (for SSE, the whole stream)",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
ACTIVE_STREAMS = Gauge(
    "tokenbus_gateway_active_streams",
    "SSE responses open right now, by route template",
    ["route"],
)
ERRORS = Counter(
    "tokenbus_gateway_errors_total",
    "Error responses, by stable error code (invalid_api_key, rate_limited, ...)",
    ["code"],
)
TURN_FAILURES = Counter(
    "tokenbus_gateway_turn_failures_total",
    "Turns relayed by this gateway that ended failed, by failure code",
    ["code"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "tokenbus_gateway_time_to_first_token_seconds",
    "From publishing a turn's request to relaying its first text, by catalog model",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
TIME_PER_OUTPUT_TOKEN = Histogram(
    "tokenbus_gateway_time_per_output_token_seconds",
    "Relayed decoding pace: (end - first text) / (output tokens - 1), by catalog model",
    ["model"],
    buckets=TOKEN_GAP_BUCKETS,
)


class TurnTiming:
    """Watches one live turn's items as the gateway relays them."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._timer = TokenTimer()
        self._output_tokens: int | None = None

    def see(self, item: TurnItem) -> None:
        if isinstance(item, TurnDelta):
            if (ttft := self._timer.token()) is not None:
                TIME_TO_FIRST_TOKEN.labels(self._model).observe(ttft)
        elif isinstance(item, TurnUsage):
            self._output_tokens = item.output_tokens
        elif isinstance(item, TurnCompleted):
            self._timer.finish()
            if (gap := self._timer.per_output_token(self._output_tokens)) is not None:
                TIME_PER_OUTPUT_TOKEN.labels(self._model).observe(gap)
        elif isinstance(item, TurnFailed):
            TURN_FAILURES.labels(item.code).inc()
