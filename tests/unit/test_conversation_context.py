"""What a conversation hands the model: tool calls kept with their results, or not at all."""

from __future__ import annotations

from contracts import ChatMessage, ToolCall
from services.gateway.conversations.models import Conversation, MessageStatus, StoredMessage
from services.gateway.conversations.service import _fit_context

CALL = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')


def conversation(*messages: StoredMessage) -> Conversation:
    return Conversation(id="c", tenant_id="t", user_id="u", model="m", messages=messages)


def asked() -> StoredMessage:
    return StoredMessage(role="user", content="Weather?")


def called(status: MessageStatus = "complete") -> StoredMessage:
    return StoredMessage(role="assistant", content="", tool_calls=(CALL,), status=status)


def result() -> StoredMessage:
    return StoredMessage(role="tool", content="18 C", tool_call_id="call_1")


def test_answered_calls_go_to_the_model_with_their_results() -> None:
    context = conversation(asked(), called(), result()).context()
    assert [m.role for m in context] == ["user", "assistant", "tool"]
    assert context[1].tool_calls == (CALL,)
    assert context[2].tool_call_id == "call_1"


def test_calls_the_client_moved_past_are_left_out() -> None:
    moved_on = StoredMessage(role="user", content="Never mind.")
    context = conversation(asked(), called(), moved_on).context()
    assert [m.role for m in context] == ["user", "user"]


def test_only_a_whole_answers_calls_are_pending() -> None:
    assert conversation(asked(), called()).pending_tool_calls() == (CALL,)
    assert conversation(asked(), called("cancelled")).pending_tool_calls() == ()
    assert conversation(asked(), called(), result()).pending_tool_calls() == ()
    assert conversation(asked()).pending_tool_calls() == ()


def test_fitting_the_context_drops_a_call_together_with_its_results() -> None:
    old = (
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="x" * 400),
        ChatMessage(role="assistant", content="", tool_calls=(CALL,)),
        ChatMessage(role="tool", content="y" * 400, tool_call_id="call_1"),
        ChatMessage(role="assistant", content="It is 18 C."),
        ChatMessage(role="user", content="And tomorrow?"),
    )
    fitted = _fit_context(old, kept_tail=1, budget=60)
    # The call went with its result; nothing is left that answers a call not there.
    assert [m.role for m in fitted] == ["system", "assistant", "user"]


def test_the_calls_a_result_answers_are_kept_whatever_the_budget() -> None:
    history = (
        ChatMessage(role="user", content="x" * 400),
        ChatMessage(role="assistant", content="", tool_calls=(CALL,)),
        ChatMessage(role="tool", content="18 C", tool_call_id="call_1"),
    )
    fitted = _fit_context(history, kept_tail=2, budget=10)
    assert [m.role for m in fitted] == ["assistant", "tool"]
