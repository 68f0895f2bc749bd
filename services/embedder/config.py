"""Embedder settings, from TOKENBUS_EMBEDDER_* (and TOKENBUS_NATS_URL)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import WorkerSettings

__all__ = ["EmbedderSettings"]


class EmbedderSettings(WorkerSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENBUS_EMBEDDER_", extra="ignore")

    # The local model is CPU-bound (numpy's BLAS uses the cores it finds): more at
    # once only queue behind each other, so requests wait here, not in the threads.
    max_concurrency: int = Field(default=1, ge=1, le=64)
    upstream_timeout_s: float = Field(default=30.0, gt=0)
    metrics_port: int = Field(
        default=9104, ge=0, le=65535, description="Port of /metrics (Prometheus); 0: none"
    )
