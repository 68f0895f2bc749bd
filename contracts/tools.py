"""Function tools: what a request offers the model, and the calls the model makes.

The shapes follow OpenAI's Chat Completions function tools (the format most
clients speak); the generator translates them for providers that speak another.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["FunctionTool", "ToolCall", "ToolCallDelta", "ToolChoice", "ToolName"]

# OpenAI's rule for function names; Anthropic's is the same set of characters.
ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class FunctionTool(BaseModel):
    """A function the model may call; `parameters` is the JSON Schema of its arguments."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: ToolName
    description: str | None = Field(default=None, max_length=10_000)
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolChoice(BaseModel):
    """`auto` (the model decides), `none`, `required` (some call), or `function` (that one)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    mode: Literal["auto", "none", "required", "function"]
    name: ToolName | None = Field(default=None, description="The function, for mode `function`")


class ToolCall(BaseModel):
    """A whole call the model made: in an assistant message of the history."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1, max_length=256)
    name: ToolName
    arguments: str = Field(default="", description="JSON text, as the model wrote it")


class ToolCallDelta(BaseModel):
    """A piece of a call as it streams: `index` tells calls apart.

    The first piece of a call has its `id` and `name`; later ones add to its
    `arguments` (JSON text, in order). Pieces of several calls may interleave.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    index: int = Field(ge=0)
    id: str | None = Field(default=None, max_length=256)
    name: ToolName | None = None
    arguments: str = ""
