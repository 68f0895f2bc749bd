"""API keys and tenants as stored on JetStream KV (TOKENBUS_KEYS).

A key record is found by the sha256 digest of the key: the key itself is shown
once, at creation, and is never stored, logged or sent on the bus.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import Token, utc_now

__all__ = ["ApiKeyRecord", "Limits", "TenantRecord"]


class Limits(BaseModel):
    """None means unlimited. Token and cost budgets reset at 00:00 UTC."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    daily_tokens: int | None = Field(default=None, ge=1)
    daily_cost_usd: Decimal | None = Field(default=None, gt=0)


class ApiKeyRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    key_id: Token = Field(description="Public id of the key: safe to log and show")
    tenant_id: Token
    user_id: Token
    name: str = Field(default="", max_length=200)
    hint: str = Field(description="First characters of the key, to recognise it in a list")
    created_at: datetime = Field(default_factory=utc_now)
    revoked_at: datetime | None = None
    limits: Limits = Limits()


class TenantRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    tenant_id: Token
    limits: Limits = Limits()
