"""Keeping each turn's answer in its conversation, whoever was (or was not) listening.

A durable consumer of final turn events, shared by the gateway replicas. It reads
the turn back from the stream, so a cancelled or failed turn keeps its partial
text, and an answer is recorded even if its client and its gateway are gone.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from contracts import ConversationTitled, TurnCompleted, TurnFailed
from services.gateway.conversations.models import (
    Conversation,
    MessageStatus,
    StoredMessage,
    TokenCounts,
)
from services.gateway.conversations.store import ConversationStore, Unchanged
from services.gateway.conversations.titles import keep_title, request_title
from services.gateway.replay import replay_turn
from services.gateway.turns import TurnTranscript
from services.runtime.bus import Bus
from services.runtime.worker import Delivery, Handler

__all__ = ["RecordedEvent", "parse_recorded_event", "turn_recorder"]

# tokenbus.v1.turn.<gateway_id>.<conversation>.<turn>.<kind>
_GATEWAY_TOKEN = 3

_READ_BACK_PATIENCE_S = 10.0


RecordedEvent = TurnCompleted | TurnFailed | ConversationTitled
_recorded_events: TypeAdapter[RecordedEvent] = TypeAdapter(
    Annotated[RecordedEvent, Field(discriminator="type")]
)


def parse_recorded_event(data: bytes | str) -> RecordedEvent:
    """Decode what the recorder consumes; a ValidationError dead-letters it."""
    return _recorded_events.validate_json(data)


def turn_recorder(bus: Bus, store: ConversationStore) -> Handler[RecordedEvent]:
    async def record(event: RecordedEvent, delivery: Delivery) -> None:
        if isinstance(event, ConversationTitled):
            await keep_title(store, event)
            return
        conversation = await _record_answer(bus, store, event)
        if conversation is not None:
            # Also on a redelivery: the first try may have died before asking.
            gateway_id = delivery.subject.split(".")[_GATEWAY_TOKEN]
            await request_title(bus, conversation, event.turn_id, gateway_id, event.correlation_id)

    return record


async def _record_answer(
    bus: Bus, store: ConversationStore, final: TurnCompleted | TurnFailed
) -> Conversation | None:
    """The conversation with the turn's answer in it; None for a stateless completion."""
    conversation = await store.get(final.tenant_id, final.conversation_id)
    if conversation is None or conversation.has_answer_for(final.turn_id):
        return conversation  # a stateless completion, or already recorded (redelivery)
    text, usage = await _read_back(bus, final)
    answer = StoredMessage(
        role="assistant",
        content=text,
        turn_id=final.turn_id,
        status=_status(final),
        model=final.model if isinstance(final, TurnCompleted) else conversation.model,
        usage=usage,
        error_code=final.code if isinstance(final, TurnFailed) else None,
        created_at=final.occurred_at,
    )

    def add_answer(current: Conversation) -> Conversation:
        if current.has_answer_for(final.turn_id):
            raise Unchanged
        return current.model_copy(
            update={
                "messages": (*current.messages, answer),
                "active_turn_id": None
                if current.active_turn_id == final.turn_id
                else current.active_turn_id,
                "usage": current.usage + (usage or TokenCounts()),
                "updated_at": max(current.updated_at, final.occurred_at),
            }
        )

    return await store.update(final.tenant_id, final.conversation_id, add_answer)


def _status(final: TurnCompleted | TurnFailed) -> MessageStatus:
    if isinstance(final, TurnFailed):
        return "failed"
    return "cancelled" if final.finish_reason == "cancelled" else "complete"


async def _read_back(bus: Bus, final: TurnCompleted | TurnFailed) -> tuple[str, TokenCounts | None]:
    transcript = TurnTranscript()
    async for item in replay_turn(
        bus, final.conversation_id, final.turn_id, patience_s=_READ_BACK_PATIENCE_S
    ):
        transcript.add(item)
    usage = transcript.usage
    counts = (
        None
        if usage is None
        else TokenCounts(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    )
    return transcript.text, counts
