"""Naming conversations: the command the gateway sends and the event the titler answers.

The gateway asks once a conversation's first exchange is recorded; the titler
answers on the first turn's own subject (kind `title`), so the gateway replica
relaying that turn forwards it to a connected client without a new subscription.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts.base import BusMessage, Token

__all__ = ["TITLE_MAX_CHARS", "ConversationTitled", "TitleRequest", "TitleSource"]

TITLE_MAX_CHARS = 80

TitleSource = Literal["model", "fallback"]


class TitleRequest(BusMessage):
    """Published by the gateway after a conversation's first exchange; one titler takes it."""

    type: Literal["title.request"] = "title.request"
    tenant_id: Token
    user_id: Token
    gateway_id: Token = Field(description="Replica relaying the first turn (title event routing)")
    conversation_id: Token
    turn_id: Token = Field(description="The conversation's first turn")
    user_message: str = Field(min_length=1, max_length=16_000)
    assistant_message: str = Field(default="", max_length=16_000)


class ConversationTitled(BusMessage):
    """Published by the titler, exactly once per conversation, on the first turn's subject."""

    type: Literal["conversation.titled"] = "conversation.titled"
    tenant_id: Token
    conversation_id: Token
    turn_id: Token
    title: str = Field(min_length=1, max_length=TITLE_MAX_CHARS)
    source: TitleSource = Field(description="model, or fallback when the model's answers failed")
    model: str | None = Field(default=None, description="Catalog name of the utility model")
