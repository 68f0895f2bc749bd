"""Gateway settings, from TOKENBUS_GATEWAY_* (and TOKENBUS_NATS_URL)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import Token, new_id

__all__ = ["GatewaySettings"]


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENBUS_GATEWAY_", extra="ignore")

    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        validation_alias=AliasChoices("TOKENBUS_GATEWAY_NATS_URL", "TOKENBUS_NATS_URL"),
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    gateway_id: Token = Field(
        default_factory=lambda: new_id("gw"),
        description="Routing token of this replica; unique per running process",
    )
    models: list[str] = Field(default_factory=lambda: ["smollm2-135m"], min_length=1)
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_output_tokens: int = Field(default=4096, ge=1)
    request_deadline_s: float = Field(default=120.0, gt=0)
    model_deadlines_s: dict[str, float] = Field(
        default_factory=dict, description="Per-model deadline overrides, e.g. slow reasoning models"
    )
    max_queue_age_s: float = Field(
        default=30.0, gt=0, description="503 while the oldest waiting request is older than this"
    )
    heartbeat_s: float = Field(default=15.0, gt=0, description="SSE comment when idle this long")
    resume_grace_s: float = Field(
        default=10.0,
        ge=0,
        description="A conversation turn whose reader left is cancelled unless one returns in time",
    )
    context_window_tokens: int = Field(default=4096, ge=256)
    max_message_chars: int = Field(default=100_000, ge=1)
    log_level: str = "INFO"

    def deadline_for(self, model: str) -> float:
        return self.model_deadlines_s.get(model, self.request_deadline_s)
