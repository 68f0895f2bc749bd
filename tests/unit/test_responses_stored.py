"""Where a stored response's turn goes: its previous response's conversation, or a branch."""

from __future__ import annotations

from contracts import ChatMessage, ToolCall
from services.gateway.conversations.models import Conversation, StoredMessage
from services.gateway.responses.stored import Previous, slot_for

CALL = ToolCall(id="c1", name="f", arguments="{}")


def conversation() -> Conversation:
    said = [("user", "a", "t1", ()), ("assistant", "A", "t1", (CALL,)),
            ("tool", "r", "t2", ()), ("assistant", "B", "t2", ())]  # fmt: skip
    messages = tuple(
        StoredMessage(
            role=role,
            content=text,
            turn_id=turn,
            tool_calls=calls,
            tool_call_id="c1" if role == "tool" else None,
        )
        for role, text, turn, calls in said
    )
    return Conversation(id="conv1", tenant_id="t", user_id="u", model="m", messages=messages)


def test_continuing_the_last_response_continues_its_conversation() -> None:
    slot = slot_for(Previous(conversation(), "t2"))
    assert (slot.conversation_id, slot.continues, slot.after_turn) == ("conv1", True, "t2")


def test_continuing_an_earlier_response_branches_with_the_history_up_to_it() -> None:
    previous = Previous(conversation(), "t1")
    slot = slot_for(previous)
    assert slot.conversation_id != "conv1"
    assert not slot.continues
    assert [m.content for m in slot.history] == ["a", "A"]
    assert previous.pending_calls == (CALL,)
    # Its calls go to the model only once the next input answers them.
    assert [(m.content, m.tool_calls) for m in previous.context()] == [("a", ()), ("A", ())]
    answer = ChatMessage(role="tool", content="r", tool_call_id="c1")
    assert [m.tool_calls for m in previous.context((answer,))] == [(), (CALL,), ()]


def test_a_first_response_starts_a_conversation() -> None:
    slot = slot_for(None)
    assert slot.conversation_id.startswith("conv")
    assert (slot.continues, slot.history) == (False, ())
