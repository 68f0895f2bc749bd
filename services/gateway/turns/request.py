"""The one place a ChatRequest is made: what every API surface asks, as the bus carries it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts import ChatMessage, ChatRequest, FunctionTool, GenerationParams, ToolChoice
from services.gateway.caller import Caller
from services.gateway.catalog import deadline_s
from services.gateway.config import GatewaySettings
from services.runtime.catalog import ModelEntry

__all__ = ["PreparedTurn", "TurnSpec", "chat_request", "turn_deadline"]


@dataclass(frozen=True, slots=True)
class TurnSpec:
    """A turn as an API surface decoded it, before the gateway adds who and when."""

    conversation_id: str
    turn_id: str
    correlation_id: str
    messages: tuple[ChatMessage, ...]
    params: GenerationParams
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    buffered: bool = False
    """Nobody reads the answer as it streams (see ChatRequest.buffered)."""


@dataclass(frozen=True, slots=True)
class PreparedTurn:
    """A request ready to launch, with the image bytes it names (stored before it is
    published, by sha256)."""

    request: ChatRequest
    images: dict[str, bytes] = field(default_factory=dict)


def chat_request(
    spec: TurnSpec,
    entry: ModelEntry,
    caller: Caller,
    settings: GatewaySettings,
    now: datetime,
) -> ChatRequest:
    return ChatRequest(
        correlation_id=spec.correlation_id,
        occurred_at=now,
        gateway_id=settings.gateway_id,
        conversation_id=spec.conversation_id,
        turn_id=spec.turn_id,
        tenant_id=caller.tenant_id,
        user_id=caller.user_id,
        key_id=caller.key_id,
        model=entry.name,
        messages=spec.messages,
        params=spec.params,
        tools=spec.tools,
        tool_choice=spec.tool_choice,
        parallel_tool_calls=spec.parallel_tool_calls,
        deadline_at=turn_deadline(entry, settings, now),
        buffered=spec.buffered,
    )


def turn_deadline(entry: ModelEntry, settings: GatewaySettings, now: datetime) -> datetime:
    return now + timedelta(seconds=deadline_s(entry, settings))
