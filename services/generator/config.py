"""Generator settings, from TOKENBUS_GENERATOR_* (and TOKENBUS_NATS_URL)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import WorkerSettings

__all__ = ["GeneratorSettings"]


class GeneratorSettings(WorkerSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENBUS_GENERATOR_", extra="ignore")

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
    semantic_embed_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="Longest wait for the embedder on a semantic cache lookup; past it: a miss",
    )
    semantic_rebuild_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="At start, longest wait for the semantic cache index to be rebuilt",
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
    http_transport: Literal["aiohttp", "httpx"] = Field(
        default="aiohttp",
        description=(
            "How the provider SDKs reach upstreams: aiohttp (the SDKs' DefaultAioHttpClient) "
            "or httpx2's own transport"
        ),
    )
    coalesce_window_ms: float = Field(
        default=5.0,
        ge=0,
        le=10,
        description=(
            "Longest a token waits for the previous delta's ack before it is published "
            "with the tokens that came meanwhile, as one delta; 0: one delta per chunk"
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
    metrics_port: int = Field(
        default=9101, ge=0, le=65535, description="Port of /metrics (Prometheus); 0: none"
    )
