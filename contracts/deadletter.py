"""What a consumer publishes when it refuses a message for good."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts.base import BusMessage

__all__ = ["DeadLetter"]


class DeadLetter(BusMessage):
    type: Literal["dead_letter"] = "dead_letter"
    consumer: str = Field(description="Durable name of the consumer that refused it")
    original_subject: str
    reason: str = Field(max_length=2000)
    stream_sequence: int | None = None
    delivered: int | None = None
    payload: str = Field(description="The original payload, UTF-8 with replacement, truncated")
