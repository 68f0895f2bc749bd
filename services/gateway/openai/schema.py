"""The slice of OpenAI's Chat Completions request that tokenbus accepts.

Unknown top-level fields are ignored (clients send many optional ones); the
fields we do read are validated strictly so bad input is a clear 400.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictStr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from contracts import ChatMessage, ContentPart, ResponseFormat, ToolCall, ToolName
from services.gateway.openai.strict_schema import strict_problem
from services.gateway.openai.tools import (
    ToolChoiceInput,
    ToolOffer,
    check_json_schema,
    tool_choice_problem,
)
from services.gateway.unknown_kinds import UnknownKind, kind_of

__all__ = [
    "ChatCompletionRequest",
    "ImageUrlPart",
    "InputMessage",
    "OtherPart",
    "StreamOptions",
    "TextPart",
]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: StrictStr


class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: StrictStr = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImageUrlPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["image_url"]
    image_url: ImageUrl


# input_audio, file ...: refused by name in services.gateway.openai.images.
OtherPart = UnknownKind


InputPart = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[ImageUrlPart, Tag("image_url")]
    | Annotated[OtherPart, Tag("other")],
    Discriminator(lambda v: kind_of(v, ("text", "image_url"))),
]


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: ToolName
    arguments: StrictStr


class InputToolCall(BaseModel):
    """A call in an assistant message of the history, as OpenAI returned it."""

    model_config = ConfigDict(extra="ignore")

    id: StrictStr = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCall


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # OpenAI's newer "developer" role is the system role under another name.
    role: Literal["system", "developer", "user", "assistant", "tool"]
    # None only for an assistant message that just calls tools.
    content: StrictStr | Annotated[list[InputPart], Field(min_length=1)] | None
    name: StrictStr | None = None
    tool_calls: Annotated[list[InputToolCall], Field(min_length=1)] | None = None
    tool_call_id: StrictStr | None = Field(default=None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _tool_fields_fit_the_role(self) -> InputMessage:
        if self.tool_calls is not None and self.role != "assistant":
            raise PydanticCustomError("tool_calls_role", "tool_calls belong to assistant messages")
        if self.role == "tool" and self.tool_call_id is None:
            raise PydanticCustomError("tool_call_id_missing", "a tool message needs tool_call_id")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise PydanticCustomError(
                "content_missing",
                "content may be null only in an assistant message with tool_calls",
            )
        return self

    def to_contract(self, parts: tuple[ContentPart, ...] = ()) -> ChatMessage:
        """The bus's message; `parts` carries the images, read by services.gateway.openai.images."""
        content = self.content or ""
        text = (
            content
            if isinstance(content, str)
            else "".join(part.text for part in content if isinstance(part, TextPart))
        )
        role = "system" if self.role == "developer" else self.role
        calls = tuple(
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
            for c in self.tool_calls or ()
        )
        return ChatMessage(
            role=role, content=text, tool_calls=calls, tool_call_id=self.tool_call_id, parts=parts
        )


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: StrictStr | None = None
    schema_: Annotated[dict[str, Any], AfterValidator(check_json_schema)] = Field(
        alias="schema", default_factory=dict
    )
    strict: bool | None = None

    @model_validator(mode="after")
    def _strict_takes_the_schema(self) -> JsonSchemaFormat:
        problem = strict_problem(self.schema_) if self.strict else None
        if problem is not None:
            raise PydanticCustomError("strict_schema", "strict mode: {reason}", {"reason": problem})
        return self


class ResponseFormatInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormatInput:
        if self.type == "json_schema" and self.json_schema is None:
            raise PydanticCustomError("json_schema_missing", "type json_schema needs json_schema")
        return self

    def to_contract(self) -> ResponseFormat | None:
        if self.type == "text":
            return None  # the default: no constraint to carry
        if self.type == "json_object":
            return ResponseFormat(type="json_object")
        assert self.json_schema is not None
        f = self.json_schema
        return ResponseFormat(
            type="json_schema",
            name=f.name,
            description=f.description,
            json_schema=f.schema_,
            strict=f.strict,
        )


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(ToolOffer):
    # Fields outside this model are kept to be judged (services.gateway.openai.request_fields).
    model_config = ConfigDict(extra="allow")

    model: StrictStr = Field(min_length=1, max_length=256)
    messages: list[InputMessage] = Field(min_length=1, max_length=2048)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: StrictStr | list[StrictStr] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, description="tokenbus produces one choice: n > 1 is refused")
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100)]] | None = Field(
        default=None, max_length=1024
    )
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    response_format: ResponseFormatInput | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    user: StrictStr | None = Field(default=None, max_length=256)

    @field_validator("stream_options")
    @classmethod
    def _only_with_stream(
        cls, value: StreamOptions | None, info: ValidationInfo
    ) -> StreamOptions | None:
        # As OpenAI answers: stream_options set on a request that does not stream is a mistake.
        if value is not None and info.data.get("stream") is not True:
            raise PydanticCustomError(
                "stream_options_without_stream", "allowed only when stream is true"
            )
        return value

    @field_validator("top_logprobs")
    @classmethod
    def _only_with_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        # As OpenAI answers: how many alternatives to list means nothing without the list.
        if value is not None and info.data.get("logprobs") is not True:
            raise PydanticCustomError(
                "top_logprobs_without_logprobs", "allowed only when logprobs is true"
            )
        return value

    @field_validator("messages")
    @classmethod
    def _tool_results_answer_calls(cls, value: list[InputMessage]) -> list[InputMessage]:
        called: set[str] = set()
        for n, message in enumerate(value):
            for call in message.tool_calls or ():
                try:
                    json.loads(call.function.arguments)
                except ValueError:
                    raise PydanticCustomError(
                        "arguments_not_json",
                        "messages.{n}.tool_calls: arguments are not valid JSON",
                        {"n": n},
                    ) from None
                called.add(call.id)
            if message.role == "tool" and message.tool_call_id not in called:
                raise PydanticCustomError(
                    "tool_call_id_unknown",
                    "messages.{n}.tool_call_id: answers no tool call of an earlier message",
                    {"n": n},
                )
        return value

    @field_validator("tool_choice")
    @classmethod
    def _tool_choice_fits(
        cls, value: ToolChoiceInput | None, info: ValidationInfo
    ) -> ToolChoiceInput | None:
        names = {t.function.name for t in info.data.get("tools") or ()}
        if (problem := tool_choice_problem(value, names)) is not None:
            raise PydanticCustomError("tool_choice", problem)
        return value

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def wants_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage
