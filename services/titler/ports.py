"""The titler's side effects, as Protocols: the utility model, the claim store, the bus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from contracts import ConversationTitled, TurnUsage
from services.titler.claims import StoredClaim, TitleClaim

__all__ = [
    "ClaimStore",
    "Completion",
    "ModelCallFailed",
    "Prompt",
    "PromptMessage",
    "TitleModel",
    "TitlePublisher",
]


@dataclass(frozen=True, slots=True)
class PromptMessage:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Prompt:
    system: str
    messages: tuple[PromptMessage, ...]


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer of the model and exactly what the provider counted for it."""

    text: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    estimated: bool = False  # the provider sent no counts


class ModelCallFailed(Exception):
    """The provider errored or timed out; `reason` is a short code, never provider text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TitleModel(Protocol):
    @property
    def name(self) -> str:
        """The catalog name (what usage is priced and reported by)."""
        ...

    @property
    def provider_model(self) -> str:
        """The provider's own name for the model."""
        ...

    async def complete(self, prompt: Prompt) -> Completion:
        """One short, non-streaming answer; raises ModelCallFailed."""
        ...


class ClaimStore(Protocol):
    """Compare-and-set storage of one claim per conversation."""

    async def read(self, conversation_id: str) -> StoredClaim | None: ...

    async def create(self, conversation_id: str, claim: TitleClaim) -> int | None:
        """The new revision, or None when a claim already exists."""
        ...

    async def replace(self, conversation_id: str, claim: TitleClaim, revision: int) -> int | None:
        """The new revision, or None when the stored claim is no longer at `revision`."""
        ...


class TitlePublisher(Protocol):
    async def publish_title(self, gateway_id: str, event: ConversationTitled) -> None:
        """Publish once: a copy of an event already in the stream is not published again."""
        ...

    async def publish_usage(self, gateway_id: str, event: TurnUsage) -> None:
        """Publish deduplicated by the event's id."""
        ...
