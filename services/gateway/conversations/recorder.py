"""Keeping each turn's answer in its conversation, whoever was (or was not) listening.

A durable consumer of final turn events, shared by the gateway replicas. It reads
the turn back from the stream, so a cancelled or failed turn keeps its partial
text, and an answer is recorded even if its client and its gateway are gone.
"""

from __future__ import annotations

from contracts import TurnCompleted, TurnFailed
from services.gateway.conversations.models import (
    Conversation,
    MessageStatus,
    StoredMessage,
    TokenCounts,
)
from services.gateway.conversations.store import ConversationStore, Unchanged
from services.gateway.replay import replay_turn
from services.gateway.turns import TurnTranscript
from services.runtime.bus import Bus
from services.runtime.worker import Delivery, Handler

__all__ = ["turn_recorder"]

_READ_BACK_PATIENCE_S = 10.0


def turn_recorder(bus: Bus, store: ConversationStore) -> Handler[TurnCompleted | TurnFailed]:
    async def record(final: TurnCompleted | TurnFailed, delivery: Delivery) -> None:
        conversation = await store.get(final.tenant_id, final.conversation_id)
        if conversation is None or conversation.has_answer_for(final.turn_id):
            return  # a stateless completion, or already recorded (redelivery)
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

        await store.update(final.tenant_id, final.conversation_id, add_answer)

    return record


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
