"""A conversation as stored in the TOKENBUS_CONVERSATIONS bucket."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts import ChatMessage, FinishReason, FunctionTool, Token, ToolCall, utc_now

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
    """A message of the conversation; the tool fields are left out while empty."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = Field(default=(), exclude_if=lambda v: not v)
    tool_call_id: str | None = Field(default=None, exclude_if=lambda v: v is None)
    turn_id: Token | None = None
    status: MessageStatus = "complete"
    created_at: datetime = Field(default_factory=utc_now)
    model: str | None = None
    usage: TokenCounts | None = None
    error_code: str | None = None
    finish_reason: FinishReason | None = Field(default=None, exclude_if=lambda v: v is None)
    """How an answer ended (`length`: cut at its limit); None in records older than it."""


class Conversation(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: Token
    tenant_id: Token
    user_id: Token
    model: str
    title: str | None = None
    title_source: Literal["user", "model", "fallback"] | None = None
    system: str | None = None
    tools: tuple[FunctionTool, ...] = Field(default=(), exclude_if=lambda v: not v)
    created_at: datetime = Field(default_factory=utc_now)
    updated_at: datetime = Field(default_factory=utc_now)
    messages: tuple[StoredMessage, ...] = ()
    active_turn_id: Token | None = None
    active_turn_deadline: datetime | None = None
    usage: TokenCounts = TokenCounts()
    turn_settings: dict[str, dict[str, Any]] = Field(
        default_factory=dict, exclude_if=lambda v: not v
    )
    """Per turn id, what its API surface echoes back when the turn is read (the Responses
    API's instructions, tools, metadata...); opaque here, and absent for other turns."""

    def busy(self, now: datetime) -> bool:
        """A turn is still running (past its deadline it can no longer be)."""
        return self.active_turn_id is not None and (
            self.active_turn_deadline is None or now < self.active_turn_deadline
        )

    def context(self) -> tuple[ChatMessage, ...]:
        """What the model sees: the system prompt and every kept turn.

        Tool calls go in only with their results: calls the client moved past (it
        sent a plain message instead) are left out, since no provider takes an
        unanswered call followed by anything but its result.
        """
        answered = {m.tool_call_id for m in self.messages if m.role == "tool"}
        prior: list[ChatMessage] = []
        for m in self.messages:
            if m.status == "failed":
                continue
            calls = m.tool_calls if all(c.id in answered for c in m.tool_calls) else ()
            if m.content or calls or m.role == "tool":
                prior.append(
                    ChatMessage(
                        role=m.role,
                        content=m.content,
                        tool_calls=calls,
                        tool_call_id=m.tool_call_id,
                    )
                )
        if self.system:
            return (ChatMessage(role="system", content=self.system), *prior)
        return tuple(prior)

    def pending_tool_calls(self) -> tuple[ToolCall, ...]:
        """The calls of the last answer, when it asked for tools (no result has come yet)."""
        last = self.messages[-1] if self.messages else None
        if last is None or last.role != "assistant" or last.status != "complete":
            return ()
        return last.tool_calls

    def last_turn_id(self) -> str | None:
        for message in reversed(self.messages):
            if message.turn_id is not None:
                return message.turn_id
        return None

    def has_answer_for(self, turn_id: str) -> bool:
        return any(m.role == "assistant" and m.turn_id == turn_id for m in self.messages)
