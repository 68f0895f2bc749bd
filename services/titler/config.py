"""Titler settings, from TOKENBUS_TITLER_* (and the shared TOKENBUS_NATS_URL, _CATALOG_PATH)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import WorkerSettings
from services.titler.naming import MAX_MODEL_CALLS

__all__ = ["TitlerSettings"]


class TitlerSettings(WorkerSettings):
    model_config = SettingsConfigDict(
        env_prefix="TOKENBUS_TITLER_", extra="ignore", populate_by_name=True
    )

    model: str | None = Field(
        default=None, description="Catalog name of the model that titles; default: first utility"
    )
    timeout_s: float = Field(default=20.0, gt=0, description="Bound on one model call")
    max_output_tokens: int = Field(default=24, ge=4, description="A title is a few words")
    reasoning_max_output_tokens: int = Field(
        default=1024, ge=16, description="For a reasoning model: its thinking plus the title"
    )
    temperature: float = Field(default=0.2, ge=0, le=2)
    claim_stale_s: float = Field(
        default=60.0, gt=0, description="A pending claim silent this long is taken over"
    )
    max_in_flight: int = Field(
        default=8, ge=1, description="Titles one replica makes at once (utility models are small)"
    )
    ack_wait_s: float = Field(default=3.0, gt=0)
    max_deliver: int = Field(default=5, ge=1)
    metrics_port: int = Field(
        default=9102, ge=0, le=65535, description="Port of /metrics (Prometheus); 0: none"
    )

    @model_validator(mode="after")
    def _live_claims_are_never_stale(self) -> TitlerSettings:
        # A live owner makes at most MAX_MODEL_CALLS calls, each bounded by timeout_s;
        # a claim taken over while its owner still works would cost a second naming.
        if self.claim_stale_s <= MAX_MODEL_CALLS * self.timeout_s:
            raise ValueError(
                f"claim_stale_s must exceed {MAX_MODEL_CALLS} x timeout_s ({self.timeout_s}s)"
            )
        return self
