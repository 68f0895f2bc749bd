"""The recorder does not look up a conversation record for a stateless turn: a
completion or an unstored response carries its turn id as its conversation id."""

from __future__ import annotations

from typing import Any, cast

from contracts import TurnCompleted, new_id
from services.gateway.conversations.models import Conversation
from services.gateway.conversations.recorder import record_answer
from services.gateway.conversations.store import ConversationStore
from services.runtime.bus import Bus


class CountingStore:
    """Holds no conversations; counts the lookups."""

    def __init__(self) -> None:
        self.gets = 0

    async def get(self, tenant_id: str, conversation_id: str) -> Conversation | None:
        self.gets += 1
        return None

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the recorder wrote ({name}) for a turn with no record")


def completed(conversation_id: str, turn_id: str) -> TurnCompleted:
    return TurnCompleted(
        correlation_id=new_id(),
        conversation_id=conversation_id,
        turn_id=turn_id,
        attempt=1,
        seq=1,
        model="m",
        finish_reason="stop",
    )


async def test_a_stateless_turn_is_not_looked_up() -> None:
    store = CountingStore()
    turn_id = new_id()
    found = await record_answer(
        cast(Bus, None), cast(ConversationStore, store), completed(turn_id, turn_id)
    )
    assert found is None
    assert store.gets == 0


async def test_a_turn_of_a_conversation_is() -> None:
    store = CountingStore()
    found = await record_answer(
        cast(Bus, None), cast(ConversationStore, store), completed(new_id("conv"), new_id())
    )
    assert found is None  # no such record here
    assert store.gets == 1
