"""Events the generator publishes while it produces one turn.

Within a turn, `seq` starts at 1 and grows by one per event, so a reader can
tell exactly what it has missed; `attempt` grows when the turn is redelivered
to another generator after a crash.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from contracts.base import BusMessage, Token
from contracts.logprobs import TokenLogprob
from contracts.tools import ToolCallDelta

__all__ = [
    "FinalTurnEvent",
    "FinishReason",
    "TurnCompleted",
    "TurnDelta",
    "TurnEvent",
    "TurnEventBase",
    "TurnFailed",
    "TurnUsage",
    "parse_final_turn_event",
    "parse_turn_event",
]

FinishReason = Literal["stop", "length", "content_filter", "cancelled", "tool_calls"]


class TurnEventBase(BusMessage):
    conversation_id: Token
    turn_id: Token
    seq: int = Field(ge=1)
    attempt: int = Field(default=1, ge=1)
    tenant_id: Token = Field(default="default", description="Copied from the request")
    user_id: Token = Field(default="default", description="Copied from the request")


class TurnDelta(TurnEventBase):
    """A chunk of assistant text, in order, and/or pieces of the tool calls the model makes.

    One delta may hold several of the provider's chunks: while the previous delta is
    not yet acknowledged by the bus (at most a few milliseconds), the generator
    gathers what arrives and sends it as one. `text` is then their text joined,
    `tool_calls` their pieces in order, `logprobs` one entry per token in order. A
    delta holds text or tool-call pieces, never text after a piece. A reader must
    not assume one token per delta; `seq` still counts events, one by one.
    """

    type: Literal["turn.delta"] = "turn.delta"
    text: str
    tool_calls: tuple[ToolCallDelta, ...] = Field(
        default=(),
        exclude_if=lambda v: not v,
        description="Pieces of tool calls (text is then usually empty); absent when none",
    )
    logprobs: tuple[TokenLogprob, ...] = Field(
        default=(),
        exclude_if=lambda v: not v,
        description="The log probabilities of this text's tokens, in order; absent unless asked",
    )


class TurnUsage(TurnEventBase):
    """Token counts of one turn attempt, sent just before its final event (zeros if none)."""

    type: Literal["turn.usage"] = "turn.usage"
    key_id: Token | None = Field(default=None, description="Copied from the request")
    model: str
    provider_model: str
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cached_input_tokens: int = Field(
        default=0, ge=0, description="Part of input_tokens the provider served from its cache"
    )
    purpose: Literal["chat", "title", "structured_retry", "embedding"] = Field(
        default="chat",
        description=(
            "chat; title (the titler's calls); structured_retry: a chat turn whose answer "
            "failed its response_format and was asked again (tokens of every call); "
            "embedding: POST /v1/embeddings and the semantic cache's lookups"
        ),
    )
    estimated: bool = Field(
        default=False,
        description=(
            "True when the provider sent no final usage (a cut stream): chunks were counted, "
            "the prompt taken from the provider's early count or else estimated"
        ),
    )
    from_cache: bool = Field(
        default=False, description="Answered from the exact-response cache: no upstream tokens"
    )
    similarity: float | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="Answered from the semantic cache: the cosine of the stored question's match",
    )


class TurnCompleted(TurnEventBase):
    """The last event of a successful (or cancelled) turn."""

    type: Literal["turn.completed"] = "turn.completed"
    model: str
    finish_reason: FinishReason
    from_cache: bool = Field(default=False, description="Answered from the exact-response cache")
    output_valid: bool | None = Field(
        default=None,
        exclude_if=lambda v: v is None,
        description="Whether the answer fits the request's response_format; absent if none",
    )
    output_error: str | None = Field(
        default=None,
        max_length=1000,
        exclude_if=lambda v: v is None,
        description="The validator's message when output_valid is false",
    )


class TurnFailed(TurnEventBase):
    """The last event of a turn that could not be served.

    `code` is stable and documented; `message` is safe to show to end users and
    never carries provider internals.
    """

    type: Literal["turn.failed"] = "turn.failed"
    code: str = Field(min_length=1, max_length=64)
    message: str = Field(max_length=1000)
    retryable: bool = False


TurnEvent = Annotated[
    TurnDelta | TurnUsage | TurnCompleted | TurnFailed, Field(discriminator="type")
]

FinalTurnEvent = Annotated[TurnCompleted | TurnFailed, Field(discriminator="type")]

_turn_event_adapter: TypeAdapter[TurnEvent] = TypeAdapter(TurnEvent)
_final_event_adapter: TypeAdapter[FinalTurnEvent] = TypeAdapter(FinalTurnEvent)


def parse_turn_event(data: bytes | str) -> TurnDelta | TurnUsage | TurnCompleted | TurnFailed:
    """Decode any turn event; raises pydantic.ValidationError on bad input."""
    return _turn_event_adapter.validate_json(data)


def parse_final_turn_event(data: bytes | str) -> TurnCompleted | TurnFailed:
    """Decode a turn's last event; anything else is a ValidationError."""
    return _final_event_adapter.validate_json(data)
