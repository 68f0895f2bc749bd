"""Usage settings, from TOKENBUS_USAGE_* (and TOKENBUS_NATS_URL)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import WorkerSettings

__all__ = ["UsageSettings"]


class UsageSettings(WorkerSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENBUS_USAGE_", extra="ignore")

    max_in_flight: int = Field(default=64, ge=1)
    metrics_port: int = Field(
        default=9103, ge=0, le=65535, description="Port of /metrics (Prometheus); 0: none"
    )
