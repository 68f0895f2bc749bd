"""The envelope every tokenbus bus message carries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["SCHEMA_VERSION", "BusMessage", "Token", "new_id", "utc_now"]

SCHEMA_VERSION = 1

# Ids travel inside NATS subjects, so they must be single subject tokens:
# no dots, spaces or wildcards.
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def new_id(prefix: str = "") -> str:
    """A random id that is also a valid subject token."""
    return f"{prefix}{uuid.uuid4().hex}"


def utc_now() -> datetime:
    return datetime.now(UTC)


class BusMessage(BaseModel):
    """Base of every v1 message: identity, causality and time.

    v1 only ever grows by optional fields, so readers ignore fields they do not
    know yet instead of rejecting newer producers.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = SCHEMA_VERSION
    event_id: Token = Field(default_factory=new_id)
    correlation_id: Token
    occurred_at: datetime = Field(default_factory=utc_now)
