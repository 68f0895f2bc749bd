"""Keeping each turn's answer in its conversation, whoever was (or was not) listening.

A durable consumer of final turn events, shared by the gateway replicas. It reads
the turn back from the stream, so a cancelled or failed turn keeps its partial
text, and an answer is recorded even if its client and its gateway are gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
from services.gateway.turns.items import TurnTranscript
from services.gateway.turns.replay import replay_turn
from services.runtime.bus import Bus
from services.runtime.worker import Delivery, Handler

__all__ = [
    "AnswerKeeper",
    "RecordedEvent",
    "parse_recorded_event",
    "record_answer",
    "turn_recorder",
]

log = logging.getLogger("tokenbus.gateway.recorder")

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
        conversation = await record_answer(bus, store, event)
        if conversation is not None:
            # Also on a redelivery: the first try may have died before asking.
            gateway_id = delivery.subject.split(".")[_GATEWAY_TOKEN]
            await request_title(bus, conversation, event.turn_id, gateway_id, event.correlation_id)

    return record


@dataclass(frozen=True)
class AnswerKeeper:
    """Stores a turn's answer before its client hears that the turn ended.

    So a client that reads the conversation, or sends the next message, right after
    `done` finds the answer there and the conversation free, on any replica. The
    durable recorder stays the fallback for turns nobody relays; both write with
    compare-and-set and the second finds the answer already there.
    """

    bus: Bus
    store: ConversationStore

    async def keep(
        self,
        final: TurnCompleted | TurnFailed,
        transcript: TurnTranscript | None,
        gateway_id: str | None = None,
    ) -> None:
        try:
            conversation = await record_answer(self.bus, self.store, final, transcript)
            if conversation is not None and gateway_id is not None:
                await request_title(
                    self.bus, conversation, final.turn_id, gateway_id, final.correlation_id
                )
        except Exception as exc:  # the recorder will store it; the client still gets its end
            log.warning("answer not stored in time", extra={"error_type": type(exc).__name__})


async def record_answer(
    bus: Bus,
    store: ConversationStore,
    final: TurnCompleted | TurnFailed,
    transcript: TurnTranscript | None = None,
) -> Conversation | None:
    """The conversation with the turn's answer in it; None for a stateless completion.

    `transcript` is the whole turn as a reader relayed it; without one the turn is
    read back from the stream (and recorded as broken if it lost an event).
    """
    if final.conversation_id == final.turn_id:
        # A stateless turn (a completion, an unstored response) carries its own id as
        # its conversation's (docs/events.md): there is no record to look up.
        return None
    conversation = await store.get(final.tenant_id, final.conversation_id)
    if conversation is None or conversation.has_answer_for(final.turn_id):
        return conversation  # a stateless completion, or already recorded (redelivery)
    if transcript is None:
        transcript, final = await _read_back(bus, final)
    usage = transcript.usage
    counts = (
        None
        if usage is None
        else TokenCounts(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    )
    status = _status(final)
    answer = StoredMessage(
        role="assistant",
        content=transcript.text,
        # A call cut short has arguments nobody can run: only a whole answer keeps its calls.
        tool_calls=transcript.tool_calls if status == "complete" else (),
        turn_id=final.turn_id,
        status=status,
        model=final.model if isinstance(final, TurnCompleted) else conversation.model,
        usage=counts,
        error_code=final.code if isinstance(final, TurnFailed) else None,
        finish_reason=final.finish_reason if isinstance(final, TurnCompleted) else None,
        created_at=final.occurred_at,
    )
    ended_at = final.occurred_at

    def add_answer(current: Conversation) -> Conversation:
        if current.has_answer_for(answer.turn_id or ""):
            raise Unchanged
        return current.model_copy(
            update={
                "messages": (*current.messages, answer),
                "active_turn_id": None
                if current.active_turn_id == answer.turn_id
                else current.active_turn_id,
                "usage": current.usage + (counts or TokenCounts()),
                "updated_at": max(current.updated_at, ended_at),
            }
        )

    return await store.update(final.tenant_id, final.conversation_id, add_answer)


def _status(final: TurnCompleted | TurnFailed) -> MessageStatus:
    if isinstance(final, TurnFailed):
        return "failed"
    return "cancelled" if final.finish_reason == "cancelled" else "complete"


async def _read_back(
    bus: Bus, final: TurnCompleted | TurnFailed
) -> tuple[TurnTranscript, TurnCompleted | TurnFailed]:
    """The turn as the stream holds it, and how it ended there (broken, if it lost an event)."""
    transcript = TurnTranscript()
    ended = final
    async for item in replay_turn(
        bus, final.conversation_id, final.turn_id, patience_s=_READ_BACK_PATIENCE_S
    ):
        transcript.add(item)
        if isinstance(item, TurnCompleted | TurnFailed):
            ended = item
    return transcript, ended
