"""The Messages API request as Anthropic's SDK sends it, validated in its own vocabulary.

Unknown top-level fields are refused, as Anthropic refuses them ("Extra inputs
are not permitted"); known ones tokenbus cannot honour are refused by name in
services.gateway.anthropic.translate.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictStr, Tag

from contracts import ToolName
from services.gateway.unknown_kinds import UnknownKind, kind_of

__all__ = [
    "ImageBlock",
    "MessageParam",
    "MessagesRequest",
    "TextBlock",
    "ToolResultBlock",
    "ToolUseBlock",
]


class _Block(BaseModel):
    # cache_control and citations are hints about caching and sources, not the answer.
    model_config = ConfigDict(extra="ignore")


class TextBlock(_Block):
    type: Literal["text"]
    text: StrictStr


class Base64Source(_Block):
    type: Literal["base64"]
    media_type: StrictStr
    data: StrictStr


class UrlSource(_Block):
    type: Literal["url"]
    url: StrictStr


class ImageBlock(_Block):
    type: Literal["image"]
    source: Annotated[Base64Source | UrlSource, Field(discriminator="type")]


class ToolUseBlock(_Block):
    type: Literal["tool_use"]
    id: StrictStr = Field(min_length=1, max_length=256)
    name: ToolName
    input: dict[str, Any]


class ToolResultBlock(_Block):
    type: Literal["tool_result"]
    tool_use_id: StrictStr = Field(min_length=1, max_length=256)
    content: StrictStr | list[TextBlock] = ""
    is_error: bool = False


# document, thinking, server tool results ...: refused by name.
OtherBlock = UnknownKind


_KNOWN_BLOCKS = ("text", "image", "tool_use", "tool_result")


Block = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[OtherBlock, Tag("other")],
    Discriminator(lambda v: kind_of(v, _KNOWN_BLOCKS)),
]


class MessageParam(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: StrictStr | Annotated[list[Block], Field(min_length=1)]


class ToolParam(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Absent or "custom" for a client tool; Anthropic's server tools have a versioned type.
    type: StrictStr | None = None
    name: ToolName
    description: StrictStr | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None


class ToolChoiceParam(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["auto", "any", "tool", "none"]
    name: ToolName | None = None
    disable_parallel_tool_use: bool | None = None


class OutputFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: OutputFormat | None = None
    effort: StrictStr | None = None


class MessagesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr = Field(min_length=1, max_length=256)
    max_tokens: int = Field(ge=1, description="Required, as Anthropic requires it")
    messages: list[MessageParam] = Field(min_length=1, max_length=2048)
    system: StrictStr | list[TextBlock] | None = None
    stream: bool = False
    stop_sequences: list[StrictStr] | None = Field(default=None, max_length=4)
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    tools: list[ToolParam] | None = Field(default=None, max_length=128)
    tool_choice: ToolChoiceParam | None = None
    metadata: dict[str, Any] | None = None
    service_tier: StrictStr | None = None
    output_config: OutputConfig | None = None
    # Known to Anthropic, not carried by tokenbus: refused by name when set.
    thinking: dict[str, Any] | None = None
    container: Any = None
    mcp_servers: Any = None
    context_management: Any = None
