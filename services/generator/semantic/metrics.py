"""The semantic cache's Prometheus metrics (`model`: a catalog name, never free-form)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["SEMANTIC_ENTRIES", "SEMANTIC_LOOKUPS", "SEMANTIC_LOOKUP_SECONDS", "SEMANTIC_SIMILARITY"]

SEMANTIC_LOOKUPS = Counter(
    "tokenbus_generator_semantic_cache_lookups_total",
    "Semantic cache lookups, by catalog model and result (hit, miss)",
    ["model", "result"],
)
SEMANTIC_SIMILARITY = Histogram(
    "tokenbus_generator_semantic_cache_similarity",
    "Cosine similarity of the nearest stored question, per lookup that found one",
    ["model"],
    buckets=(0.5, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 1.0),
)
SEMANTIC_LOOKUP_SECONDS = Histogram(
    "tokenbus_generator_semantic_cache_lookup_seconds",
    "Time to search the in-memory index (the embedding not included)",
    ["model"],
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
)
SEMANTIC_ENTRIES = Gauge(
    "tokenbus_generator_semantic_cache_entries", "Live entries in this replica's index"
)
