"""Usage settings, from TOKENBUS_USAGE_* (and TOKENBUS_NATS_URL)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["UsageSettings"]


class UsageSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENBUS_USAGE_", extra="ignore")

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        validation_alias=AliasChoices("TOKENBUS_USAGE_NATS_URL", "TOKENBUS_NATS_URL"),
    )
    catalog_path: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("TOKENBUS_USAGE_CATALOG_PATH", "TOKENBUS_CATALOG_PATH"),
        description="Model catalog, for prices",
    )
    max_in_flight: int = Field(default=64, ge=1)
    metrics_host: str = Field(
        default="127.0.0.1", description="Address of /metrics: 0.0.0.0 in a container"
    )
    metrics_port: int = Field(
        default=9103, ge=0, le=65535, description="Port of /metrics (Prometheus); 0: none"
    )
    log_level: str = "INFO"
