"""A conversation as stored in the TOKENBUS_CONVERSATIONS bucket."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts import ChatMessage, Token, utc_now

__all__ = ["Conversation", "MessageStatus", "StoredMessage", "TokenCounts"]

MessageStatus = Literal["complete", "cancelled", "failed", "pending"]


class TokenCounts(BaseModel):
    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class StoredMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str
    turn_id: Token | None = None
    status: MessageStatus = "complete"
    created_at: datetime = Field(default_factory=utc_now)
    model: str | None = None
    usage: TokenCounts | None = None
    error_code: str | None = None


class Conversation(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: Token
    tenant_id: Token
    user_id: Token
    model: str
    title: str | None = None
    title_source: Literal["user", "model", "fallback"] | None = None
    system: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    messages: tuple[StoredMessage, ...] = ()
    active_turn_id: Token | None = None
    active_turn_deadline: datetime | None = None
    usage: TokenCounts = TokenCounts()

    def busy(self, now: datetime) -> bool:
        """A turn is still running (past its deadline it can no longer be)."""
        return self.active_turn_id is not None and (
            self.active_turn_deadline is None or now < self.active_turn_deadline
        )

    def context(self) -> tuple[ChatMessage, ...]:
        """What the model sees: the system prompt and every kept turn."""
        prior = tuple(
            ChatMessage(role=m.role, content=m.content)
            for m in self.messages
            if m.status != "failed" and m.content
        )
        if self.system:
            return (ChatMessage(role="system", content=self.system), *prior)
        return prior

    def last_turn_id(self) -> str | None:
        for message in reversed(self.messages):
            if message.turn_id is not None:
                return message.turn_id
        return None

    def has_answer_for(self, turn_id: str) -> bool:
        return any(m.role == "assistant" and m.turn_id == turn_id for m in self.messages)
