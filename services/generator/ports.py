"""What the generator needs from the outside world, as Protocols."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Protocol

from contracts import (
    ChatRequest,
    FinishReason,
    TokenLogprob,
    ToolCallDelta,
    TurnCompleted,
    TurnDelta,
    TurnFailed,
    TurnUsage,
)

__all__ = ["EventSink", "ModelProvider", "StreamEnd", "TextChunk", "TurnEventOut", "TurnHistory"]


@dataclass(frozen=True, slots=True)
class TextChunk:
    """A piece of the answer: text, and/or pieces of tool calls (OpenAI's streamed shape)."""

    text: str
    # The prompt's size, when the provider tells it before the end (Anthropic does, at
    # the start): a stream cut short is then billed its exact input, not a guess.
    input_tokens: int | None = None
    cached_input_tokens: int = 0
    tool_calls: tuple[ToolCallDelta, ...] = ()
    # The log probabilities of this text's tokens, only when the request asked for them.
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The provider finished; counts are None when it did not report usage."""

    finish_reason: FinishReason
    provider_model: str
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int = 0
    served_by: str | None = None
    """The catalog model that answered, when failover chose another than requested."""
    from_cache: bool = False
    similarity: float | None = None
    """For a semantic cache hit: the cosine of the stored question that matched."""


class ModelProvider(Protocol):
    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        """Yield text as the model makes it, then one StreamEnd.

        Raises services.generator.errors.ProviderError for failures it can name.
        Closing the iterator early must close the upstream request.
        """
        ...


TurnEventOut = TurnDelta | TurnUsage | TurnCompleted | TurnFailed


class EventSink(Protocol):
    async def emit(self, request: ChatRequest, event: TurnEventOut) -> Awaitable[object] | None:
        """Send one event toward the client; delivery order follows call order.

        May return before the bus has the event, with an awaitable that completes
        when it does: deltas published meanwhile are coalesced. None: nothing to wait for.
        """
        ...

    async def emit_final(self, request: ChatRequest, event: TurnEventOut) -> None:
        """Send the turn's last event and wait until the bus has stored it."""
        ...


class TurnHistory(Protocol):
    async def events(self, request: ChatRequest) -> list[TurnEventOut]:
        """The events earlier attempts of this turn published, as the bus stored them."""
        ...
