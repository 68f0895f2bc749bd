"""The generator's Prometheus metrics.

`model` is always a catalog name (bounded by the catalog; "unknown" for a request
naming none), never a provider's free-form model string or any id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from services.generator.breaker import CircuitBreaker
from services.runtime.metrics import LATENCY_BUCKETS, TOKEN_GAP_BUCKETS

__all__ = [
    "ACTIVE_STREAMS",
    "BREAKER_STATES",
    "CACHE_HITS",
    "COMPLETIONS",
    "ERRORS",
    "FAILOVERS",
    "RETRIES",
    "STRUCTURED_OUTPUTS",
    "TIME_PER_OUTPUT_TOKEN",
    "TIME_TO_FIRST_TOKEN",
    "TOKENS",
    "BreakerStates",
]

TIME_TO_FIRST_TOKEN = Histogram(
    "tokenbus_generator_time_to_first_token_seconds",
    "From calling the provider (retries included) to its first text, by catalog model",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
TIME_PER_OUTPUT_TOKEN = Histogram(
    "tokenbus_generator_time_per_output_token_seconds",
    "Decoding pace: (end - first text) / (output tokens - 1), by catalog model",
    ["model"],
    buckets=TOKEN_GAP_BUCKETS,
)
TOKENS = Counter(
    "tokenbus_generator_tokens_total",
    "Tokens the providers reported, by catalog model that answered and type (input, output)",
    ["model", "type"],
)
COMPLETIONS = Counter(
    "tokenbus_generator_completions_total",
    "Provider streams that finished, by catalog model that answered and finish reason",
    ["model", "finish_reason"],
)
ERRORS = Counter(
    "tokenbus_generator_errors_total",
    "Provider calls that failed, by requested catalog model and stable error code",
    ["model", "code"],
)
RETRIES = Counter(
    "tokenbus_generator_retries_total",
    "Provider calls tried again before the first token, by catalog model",
    ["model"],
)
FAILOVERS = Counter(
    "tokenbus_generator_failovers_total",
    "Turns moved from this catalog model to its next fallback",
    ["model"],
)
# Answers checked against their response_format: "valid" / "invalid" once per turn
# (how it ended), "retried" once per time it was asked again.
STRUCTURED_OUTPUTS = Counter(
    "tokenbus_generator_structured_outputs_total",
    "Answers checked against their response_format, by catalog model and outcome "
    "(valid, invalid, retried)",
    ["model", "outcome"],
)
ACTIVE_STREAMS = Gauge(
    "tokenbus_generator_active_streams",
    "Provider streams open right now",
)
# Hits of the exact-response cache (answers replayed without calling the model);
# the hit ratio is this over tokenbus_generator_completions_total.
CACHE_HITS = Counter(
    "tokenbus_generator_cache_hits_total",
    "Turns answered from the exact-response cache, by catalog model",
    ["model"],
)

_STATES = ("closed", "half_open", "open")


class BreakerStates:
    """Each circuit breaker's state, read when scraped: 1 for its current state, else 0."""

    def __init__(self) -> None:
        self._breakers: Mapping[str, CircuitBreaker] = {}

    def watch(self, breakers: Mapping[str, CircuitBreaker]) -> None:
        self._breakers = breakers

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "tokenbus_generator_breaker_state",
            "Circuit breaker of each catalog model: 1 on its current state "
            "(closed, half_open, open), 0 on the others",
            labels=["model", "state"],
        )
        for name, breaker in sorted(self._breakers.items()):
            current = breaker.state
            for state in _STATES:
                family.add_metric([name, state], 1.0 if state == current else 0.0)
        yield family


# Registered once per process; the composition root points it at its breakers.
BREAKER_STATES = BreakerStates()
REGISTRY.register(BREAKER_STATES)
