"""Who a request is from, once its API key has been checked."""

from __future__ import annotations

from dataclasses import dataclass

from contracts import Limits

__all__ = ["Caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: str
    user_id: str
    key_id: str
    key_limits: Limits
