"""Gateway settings, from TOKENBUS_GATEWAY_* (and TOKENBUS_NATS_URL)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from contracts import Token, new_id
from services.gateway.jobs.webhook_policy import Network, parse_networks
from services.runtime.settings import ServiceSettings

__all__ = ["GatewaySettings"]


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TOKENBUS_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    gateway_id: Token = Field(
        default_factory=lambda: new_id("gw"),
        description="Routing token of this replica; unique per running process",
    )
    max_body_bytes: int = Field(
        default=10_000_000, ge=1024, description="413 above it; room for a data: URL image"
    )
    max_images: int = Field(default=20, ge=0, description="Images in one request, at most")
    max_image_bytes: int = Field(
        default=5_000_000, ge=1024, description="Bytes of one data: URL image, decoded, at most"
    )
    request_deadline_s: float = Field(
        default=120.0, gt=0, description="Deadline of a turn whose catalog entry sets none"
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
    title_wait_s: float = Field(
        default=30.0,
        ge=0,
        description="A conversation's first turn stream stays open this long for its title",
    )
    drain_grace_s: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, how long open streams may finish before a resumable end",
    )
    drain_delay_s: float = Field(
        default=0.0,
        ge=0,
        description="On SIGTERM, how long to answer 503 on readiness before closing the listener",
    )
    bus_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="Longest wait for the bus on a request; past it: 503 bus_unavailable",
    )
    embedding_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Longest wait for the embedder per batch of POST /v1/embeddings (a request of n "
            "batches waits n times this); past it: 504"
        ),
    )
    api_docs: bool = Field(
        default=False,
        description=(
            "Serve Swagger UI at /docs and ReDoc at /redoc (the browser then loads their "
            "scripts from a public CDN); /openapi.json is always served"
        ),
    )
    max_message_chars: int = Field(default=100_000, ge=1)
    webhook_allowed_networks: str = Field(
        default="",
        description=(
            "Comma-separated networks (CIDR) job webhooks may reach besides public addresses, "
            "e.g. 10.20.0.0/16 for an internal receiver; private, loopback and link-local "
            "addresses are refused otherwise"
        ),
    )

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        parse_networks(value)  # a typo stops the gateway at start, not at the first webhook
        return value

    @property
    def webhook_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.webhook_allowed_networks)
