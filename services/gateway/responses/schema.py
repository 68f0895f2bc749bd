"""The slice of OpenAI's Responses request (`POST /v1/responses`) that tokenbus accepts.

Parts tokenbus cannot honour (built-in tools, image or file inputs, reasoning
items...) are still decoded, as `Other*`, so that they are refused by name
(services.gateway.responses.fields) instead of failing as an unreadable body.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictStr,
    Tag,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from contracts import ToolName
from services.gateway.openai.schema import JsonSchemaFormat
from services.gateway.openai.tools import FunctionDefinition
from services.gateway.unknown_kinds import UnknownKind, kind_of

__all__ = [
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "FunctionToolChoice",
    "FunctionToolInput",
    "InputItem",
    "MessageItem",
    "OtherContent",
    "OtherItem",
    "OtherTool",
    "OtherToolChoice",
    "ResponseRequest",
    "TextContent",
]


class TextContent(BaseModel):
    """input_text, or output_text in an assistant message of the history."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["input_text", "output_text"]
    text: StrictStr


# input_image, input_file, input_audio, refusal ...: refused by name.
OtherContent = UnknownKind


Content = Annotated[
    Annotated[TextContent, Tag("text")] | Annotated[OtherContent, Tag("other")],
    Discriminator(
        lambda v: "text" if kind_of(v, ("input_text", "output_text")) != "other" else "other"
    ),
]


class MessageItem(BaseModel):
    # The "easy" message of OpenAI's SDK has no `type`; id and status of a replayed one are ignored.
    model_config = ConfigDict(extra="ignore")

    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: StrictStr | Annotated[list[Content], Field(min_length=1)]


class FunctionCallItem(BaseModel):
    """A call the model made in an earlier response, sent back as history."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["function_call"]
    call_id: StrictStr = Field(min_length=1, max_length=256)
    name: ToolName
    arguments: StrictStr

    @field_validator("arguments")
    @classmethod
    def _json(cls, value: str) -> str:
        try:
            json.loads(value)
        except ValueError:
            raise PydanticCustomError("arguments_not_json", "not valid JSON") from None
        return value


class FunctionCallOutputItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function_call_output"]
    call_id: StrictStr = Field(min_length=1, max_length=256)
    output: StrictStr | Annotated[list[Content], Field(min_length=1)]


# reasoning, item_reference, web_search_call ...: refused by name.
OtherItem = UnknownKind


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[OtherItem, Tag("other")],
    Discriminator(
        lambda v: kind_of(v, ("message", "function_call", "function_call_output"), "message")
    ),
]


class FunctionToolInput(FunctionDefinition):
    """A function tool in the Responses shape: the definition's fields at the top level."""

    type: Literal["function"]


# web_search, file_search, computer_use, code_interpreter, mcp ...: refused by name.
OtherTool = UnknownKind


Tool = Annotated[
    Annotated[FunctionToolInput, Tag("function")] | Annotated[OtherTool, Tag("other")],
    Discriminator(lambda v: kind_of(v, ("function",))),
]


class FunctionToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    name: ToolName


# allowed_tools, a built-in tool's type, mcp, custom ...: refused by name.
OtherToolChoice = UnknownKind


ToolChoiceInput = Annotated[
    Annotated[FunctionToolChoice, Tag("function")] | Annotated[OtherToolChoice, Tag("other")],
    Discriminator(lambda v: kind_of(v, ("function",))),
]


class JsonSchemaText(JsonSchemaFormat):
    type: Literal["json_schema"]


class PlainText(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "json_object"]


TextFormat = Annotated[
    Annotated[JsonSchemaText, Tag("json_schema")] | Annotated[PlainText, Tag("plain")],
    Discriminator(lambda v: "json_schema" if kind_of(v, ("json_schema",)) != "other" else "plain"),
]


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


MetadataValue = Annotated[str, Field(max_length=512)]


class ResponseRequest(BaseModel):
    # Fields outside this model are kept to be judged (services.gateway.responses.fields).
    model_config = ConfigDict(extra="allow")

    model: StrictStr = Field(min_length=1, max_length=256)
    input: StrictStr | Annotated[list[InputItem], Field(min_length=1, max_length=2048)]
    instructions: StrictStr | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: Literal["auto", "none", "required"] | ToolChoiceInput | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    text: TextConfig | None = None
    metadata: dict[Annotated[str, Field(max_length=64)], MetadataValue] | None = Field(
        default=None, max_length=16
    )
    stream: bool = False
    store: bool = True
    previous_response_id: StrictStr | None = Field(default=None, min_length=1, max_length=256)
    background: bool | None = None
    user: StrictStr | None = Field(default=None, max_length=256)

    @field_validator("input")
    @classmethod
    def _text_not_empty(cls, value: str | list[Any]) -> str | list[Any]:
        if isinstance(value, str) and not value:
            raise PydanticCustomError("input_empty", "an empty input asks nothing")
        return value

    @field_validator("tools")
    @classmethod
    def _distinct_names(cls, value: list[Any] | None) -> list[Any] | None:
        names = [t.name for t in value or () if isinstance(t, FunctionToolInput)]
        if len(set(names)) < len(names):
            raise PydanticCustomError("tools_duplicate", "each function name once")
        return value

    @field_validator("tool_choice")
    @classmethod
    def _choice_among_tools(cls, value: Any, info: ValidationInfo) -> Any:
        names = {t.name for t in info.data.get("tools") or () if isinstance(t, FunctionToolInput)}
        if value not in (None, "none") and not info.data.get("tools"):
            # As OpenAI answers: a choice among no tools is a mistake.
            raise PydanticCustomError("tool_choice", "allowed only with tools")
        if isinstance(value, FunctionToolChoice) and value.name not in names:
            raise PydanticCustomError("tool_choice", "names a function not in tools")
        return value
