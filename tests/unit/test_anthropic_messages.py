"""Chat messages mapped onto Anthropic's rules: system apart, alternating, user first."""

from __future__ import annotations

from contracts import ChatMessage
from services.generator.adapters.anthropic_provider import to_anthropic_messages


def m(role: str, content: str) -> ChatMessage:
    return ChatMessage(role=role, content=content)  # type: ignore[arg-type]


def test_system_prompts_move_to_the_system_parameter() -> None:
    system, turns = to_anthropic_messages((m("system", "Be brief."), m("user", "Hi")))
    assert system == "Be brief."
    assert turns == [{"role": "user", "content": "Hi"}]


def test_consecutive_messages_of_one_role_are_merged() -> None:
    _, turns = to_anthropic_messages(
        (m("user", "a"), m("user", "b"), m("assistant", "c"), m("assistant", "d"), m("user", "e"))
    )
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[0]["content"] == "a\n\nb"


def test_a_conversation_starting_with_the_assistant_gets_a_user_turn_first() -> None:
    system, turns = to_anthropic_messages((m("assistant", "Hello!"), m("user", "Hi")))
    assert system is None
    assert turns[0]["role"] == "user"
    assert turns[1] == {"role": "assistant", "content": "Hello!"}
