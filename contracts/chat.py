"""The command that asks for one assistant turn."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import BusMessage, Token
from contracts.tools import FunctionTool, ToolCall, ToolChoice

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "ContentPart",
    "GenerationParams",
    "ImagePart",
    "Role",
    "TextPart",
]

Role = Literal["system", "user", "assistant", "tool"]


class TextPart(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    """An image in a user message: a URL the provider fetches, or bytes the gateway stored.

    Image bytes never ride on the bus (a photo is larger than a bus message may
    be): the gateway keeps them in the images object store under their sha256,
    and the generator reads them back just before it calls the provider.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["image"] = "image"
    url: str | None = Field(default=None, description="An https URL the provider fetches")
    object_name: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="The sha256 of the bytes, their name in the images object store",
    )
    media_type: str | None = Field(
        default=None, description="For stored bytes: image/png, image/jpeg, image/gif, image/webp"
    )
    detail: Literal["auto", "low", "high"] | None = None
    width: int | None = Field(default=None, ge=1, description="In pixels, when known")
    height: int | None = Field(default=None, ge=1, description="In pixels, when known")


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(BaseModel):
    """One message of the history; `tool` messages answer an assistant's tool call.

    A user message with images carries them, in order with its text, in `parts`;
    `content` is then that text alone, for readers that only read text. The
    tool and part fields are left out of the JSON while empty, so a message
    without them reads exactly as before.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = Field(
        default=(), exclude_if=lambda v: not v, description="The calls of an assistant message"
    )
    tool_call_id: str | None = Field(
        default=None,
        max_length=256,
        exclude_if=lambda v: v is None,
        description="The call a `tool` message answers",
    )
    parts: tuple[ContentPart, ...] = Field(
        default=(),
        exclude_if=lambda v: not v,
        description="Text and images in order, for a message with images; else empty",
    )

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ImagePart))


class ResponseFormat(BaseModel):
    """The shape the answer must have: JSON, or JSON that fits `json_schema`."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["json_object", "json_schema"]
    name: str | None = Field(default=None, max_length=64, description="For json_schema")
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, description="For json_schema")
    strict: bool | None = None


def _unset(value: object) -> bool:
    return value is None


class GenerationParams(BaseModel):
    """Sampling knobs passed through to the provider; None means its default.

    The fields after `seed` are left out of the JSON while unset, so a request
    without them reads exactly as before.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: tuple[str, ...] = ()
    seed: int | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2, exclude_if=_unset)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2, exclude_if=_unset)
    logit_bias: dict[str, int] | None = Field(default=None, exclude_if=_unset)
    reasoning_effort: str | None = Field(default=None, max_length=16, exclude_if=_unset)
    response_format: ResponseFormat | None = Field(default=None, exclude_if=_unset)
    logprobs: bool | None = Field(default=None, exclude_if=_unset)
    top_logprobs: int | None = Field(default=None, ge=0, le=20, exclude_if=_unset)


class ChatRequest(BusMessage):
    """Published by the gateway; consumed by exactly one generator replica."""

    type: Literal["chat.request"] = "chat.request"
    gateway_id: Token = Field(
        description="Routing token of the gateway replica that relays the turn"
    )
    conversation_id: Token
    turn_id: Token
    tenant_id: Token = Field(default="default", description="Who pays; scopes every record")
    user_id: Token = Field(default="default", description="The tenant's end user")
    key_id: Token | None = Field(default=None, description="API key the request came with")
    model: str = Field(min_length=1, max_length=256, description="Public model name")
    messages: tuple[ChatMessage, ...] = Field(min_length=1)
    params: GenerationParams = GenerationParams()
    tools: tuple[FunctionTool, ...] = Field(
        default=(), exclude_if=lambda v: not v, description="Functions the model may call"
    )
    tool_choice: ToolChoice | None = Field(
        default=None, exclude_if=lambda v: v is None, description="None: the provider's default"
    )
    parallel_tool_calls: bool | None = Field(
        default=None, exclude_if=lambda v: v is None, description="None: the provider's default"
    )
    deadline_at: datetime | None = Field(default=None, description="Give up after this instant")
    buffered: bool = Field(
        default=False,
        exclude_if=lambda v: not v,
        description=(
            "Nobody reads the answer as it streams (a non-streamed completion, a job): "
            "a structured answer that fails validation may be asked again unseen"
        ),
    )
    no_cache: bool = Field(
        default=False,
        exclude_if=lambda v: not v,
        description=(
            "The client sent Cache-Control: no-cache: answer from the model, not from the "
            "exact or semantic cache (the answer may still be stored)"
        ),
    )
