"""The embedder's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["EMBEDDED_INPUTS", "EMBEDDING_FAILURES", "EMBEDDING_SECONDS"]

EMBEDDED_INPUTS = Counter(
    "tokenbus_embedder_inputs_total", "Texts embedded, by catalog model", ["model"]
)
EMBEDDING_SECONDS = Histogram(
    "tokenbus_embedder_request_seconds",
    "Time to answer one embedding request, by catalog model",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EMBEDDING_FAILURES = Counter(
    "tokenbus_embedder_failures_total", "Embedding requests refused or failed, by code", ["code"]
)
