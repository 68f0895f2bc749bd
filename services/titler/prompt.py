"""What the utility model is asked: a few worked examples, then the conversation's first message."""

from __future__ import annotations

from services.titler.ports import Prompt, PromptMessage

__all__ = ["SYSTEM_PROMPT", "first_prompt", "retry_prompt"]

SYSTEM_PROMPT = (
    "You give each message a short title: 2 to 6 words, no quotes, no markdown. "
    "Reply with the title only."
)

# Small models follow examples far better than instructions: these show the exact
# shape of answer wanted, in the same "Message: ... Title:" frame as the real ask.
_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("How do I reverse a list in Python?", "Reversing a list in Python"),
    ("What should I pack for a week of hiking in Norway?", "Packing for a hike in Norway"),
    ("why is the sky blue", "Why the sky is blue"),
    ("Write a poem about my cat", "Poem about a cat"),
    ("hello", "Greeting"),
)

# The opening of a message says what it is about; the rest only costs prompt tokens.
_MESSAGE_EXCERPT_CHARS = 1000
_REJECTED_EXCERPT_CHARS = 300


def _ask(user_message: str) -> str:
    excerpt = user_message.strip()[:_MESSAGE_EXCERPT_CHARS]
    return f"Message: {excerpt}\nTitle:"


def first_prompt(user_message: str) -> Prompt:
    """The first ask. Only the user's message is shown: in tests with the small local
    model, adding the assistant's answer made it copy the answer's first sentence."""
    messages: list[PromptMessage] = []
    for message, title in _EXAMPLES:
        messages.append(PromptMessage("user", _ask(message)))
        messages.append(PromptMessage("assistant", title))
    messages.append(PromptMessage("user", _ask(user_message)))
    return Prompt(SYSTEM_PROMPT, tuple(messages))


def retry_prompt(previous: Prompt, rejected: str, reason: str, user_message: str) -> Prompt:
    """The same conversation, plus the rejected answer and why, asking once more.

    The ask is repeated in the example frame: a bare correction made the small model
    answer with the correction's own words.
    """
    answer = rejected.strip()[:_REJECTED_EXCERPT_CHARS] or "(empty)"  # providers refuse empty turns
    feedback = f"That title is not valid: {reason}. Write a better title.\n{_ask(user_message)}"
    return Prompt(
        previous.system,
        (*previous.messages, PromptMessage("assistant", answer), PromptMessage("user", feedback)),
    )
