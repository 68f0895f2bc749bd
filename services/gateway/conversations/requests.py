"""What clients send to the conversations API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator
from pydantic_core import PydanticCustomError

from services.gateway.openai.schema import ResponseFormatInput
from services.gateway.openai.tools import ToolOffer, Tools

__all__ = ["ConversationChanges", "NewConversation", "NewMessage", "ToolResult"]


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = Field(default=None, max_length=256)
    system: StrictStr | None = Field(default=None, max_length=20_000)
    title: StrictStr | None = Field(default=None, min_length=1, max_length=200)
    tools: Tools | None = Field(
        default=None, description="Functions the model may call in every turn"
    )


class ConversationChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: StrictStr | None = Field(default=None, min_length=1, max_length=200)
    tools: Tools | None = Field(default=None, description="Replaces the conversation's tools")

    @field_validator("title")
    @classmethod
    def _one_clean_line(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.isprintable():  # newlines and other control characters
            raise ValueError("a title is one line of printable text")
        cleaned = " ".join(value.split())
        if not cleaned:
            raise ValueError("a title needs more than spaces")
        return cleaned

    @model_validator(mode="after")
    def _changes_something(self) -> ConversationChanges:
        if self.title is None and self.tools is None:
            raise PydanticCustomError("nothing_to_change", "give a title or tools")
        return self


class ToolResult(BaseModel):
    """What running one of the model's tool calls gave; stored as a `tool` message."""

    model_config = ConfigDict(extra="forbid")

    tool_call_id: StrictStr = Field(min_length=1, max_length=256)
    content: StrictStr


class NewMessage(ToolOffer):
    """The user's next message, or the results of the calls the last answer made, or both.

    `tools` here replace the conversation's for this turn only; `tool_choice` and
    `parallel_tool_calls` apply to this turn.
    """

    model_config = ConfigDict(extra="forbid")

    content: StrictStr | None = Field(default=None, min_length=1)
    tool_results: Annotated[list[ToolResult], Field(min_length=1, max_length=128)] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    response_format: ResponseFormatInput | None = None

    @field_validator("tool_results")
    @classmethod
    def _one_result_per_call(cls, value: list[ToolResult] | None) -> list[ToolResult] | None:
        ids = [r.tool_call_id for r in value or ()]
        if len(set(ids)) < len(ids):
            raise PydanticCustomError("tool_results_duplicate", "one result per tool_call_id")
        return value
