"""Generator settings, from TOKENBUS_GENERATOR_* (and TOKENBUS_NATS_URL)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["GeneratorSettings"]


class GeneratorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENBUS_GENERATOR_", extra="ignore")

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        validation_alias=AliasChoices("TOKENBUS_GENERATOR_NATS_URL", "TOKENBUS_NATS_URL"),
    )
    catalog_path: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("TOKENBUS_GENERATOR_CATALOG_PATH", "TOKENBUS_CATALOG_PATH"),
        description="Model catalog (TOML); the packaged default runs on the local model",
    )
    upstream_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest wait for each read from a provider: its headers, its first text",
    )
    stream_idle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Once a provider's text flows, the longest silence before it is a timeout",
    )
    retry_attempts: int = Field(default=3, ge=1, description="Tries per model before failover")
    retry_budget_s: float = Field(default=20.0, ge=0)
    breaker_window_s: float = Field(default=30.0, gt=0)
    breaker_min_calls: int = Field(default=5, ge=1)
    breaker_failure_rate: float = Field(default=0.5, gt=0, le=1)
    breaker_cooldown_s: float = Field(default=15.0, gt=0)
    structured_retries: int = Field(
        default=1,
        ge=0,
        le=3,
        description=(
            "A non-streamed answer that fails its response_format is asked again this "
            "many times, with the validator's message as feedback; 0: never"
        ),
    )
    max_in_flight: int = Field(default=256, ge=1, description="Turns one replica works on at once")
    ack_wait_s: float = Field(default=3.0, gt=0)
    max_deliver: int = Field(default=3, ge=1)
    drain_grace_s: float = Field(
        default=25.0,
        ge=0,
        description="On SIGTERM, how long turns in hand may finish before they are handed back",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address of /metrics: 0.0.0.0 in a container"
    )
    metrics_port: int = Field(
        default=9101, ge=0, le=65535, description="Port of /metrics (Prometheus); 0: none"
    )
    log_level: str = "INFO"
