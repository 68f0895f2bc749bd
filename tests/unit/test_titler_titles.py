"""What counts as a title: the model's answers judged, and the fallback that never fails."""

from __future__ import annotations

import pytest

from contracts import TITLE_MAX_CHARS, ConversationTitled
from services.titler.adapters.openai_model import title_call_limits
from services.titler.titles import (
    DEFAULT_TITLE,
    Title,
    TitleRejected,
    fallback_title,
    validate_model_title,
)


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ("Reversing a list in Python", "Reversing a list in Python"),
        ("  Sea life \n", "Sea life"),
        ('"Sea life"', "Sea life"),
        ("\u201cSea life\u201d", "Sea life"),
        ("'Sea life'", "Sea life"),
        ("Title: Sea life", "Sea life"),
        ("Sea life.", "Sea life"),
        ("Why is the sky blue?", "Why is the sky blue?"),
        ("Python's GIL explained", "Python's GIL explained"),
        ("Caf\u00e9 recipes \U0001f370", "Caf\u00e9 recipes \U0001f370"),
        ("x" * TITLE_MAX_CHARS, "x" * TITLE_MAX_CHARS),
        # Reasoning models think aloud first; the title is what follows.
        ("<think>\nThe user asks about basil.\nShort.\n</think>\n\nBasil care", "Basil care"),
        ("<THINKING>hm</THINKING> Sea life", "Sea life"),
        ("The template opened the block.\n</think>\nSea life", "Sea life"),
    ],
)
def test_accepts_a_plain_one_line_title_after_trivial_normalisation(
    answer: str, title: str
) -> None:
    assert validate_model_title(answer) == title


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ('""', "empty"),
        ("Sea\nlife", "single line"),
        ("Sea life\n\nA title about the sea", "single line"),
        ("x" * (TITLE_MAX_CHARS + 1), f"longer than {TITLE_MAX_CHARS}"),
        ('The "best" cookies', "quotation marks"),
        ("The 'best' cookies", "quotation marks"),
        ("# Sea life", "markdown"),
        ("**Sea life**", "markdown"),
        ("`asyncio` basics", "markdown"),
        ("- Sea life", "markdown"),
        ("[Sea](http://example.com) life", "markdown"),
        ("Sea life...", "period"),
        ("!!!", "words"),
        ("Sure! Here is a title for you", "introduction"),
        ("Here's a title: Sea life", "introduction"),
        ("<think>\nThe user asks about basil, so", "finish thinking"),
        ("<think>", "finish thinking"),
    ],
)
def test_refuses_an_answer_that_is_not_a_title_with_a_reason(answer: str, reason: str) -> None:
    with pytest.raises(TitleRejected) as caught:
        validate_model_title(answer)
    assert reason in caught.value.reason


HOSTILE_MESSAGES = [
    "hi",
    "",
    "   \n\t  ",
    "...",
    "?!",
    "\U0001f389\U0001f389\U0001f389",
    "# Heading\n\n**bold** and `code` and _under_",
    "```python\nprint('only code')\n```",
    "```\n```",
    "> quoted reply\n- list item",
    "- - 1. nested markers",
    '"Quoted question?" she asked.',
    "'single' quoted",
    "[a link](https://example.com/x) to read.",
    "x" * 5000,
    "word " * 400,
    "supercalifragilistic" * 10 + " tail",
    "Line one\nLine two\r\nLine three",
    "tab\tseparated\tvalues",
    "zero\u200bwidth and \u2028 line separator",
    "\u4f60\u597d\uff0c\u8bf7\u89e3\u91ca\u91cf\u5b50\u8ba1\u7b97",
    "\u0645\u0631\u062d\u0628\u0627 \u0643\u064a\u0641 \u062d\u0627\u0644\u0643",
    "Hello \U0001f44b\U0001f3fd world \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "ends with a period.",
    "ends with dashes \u2014",
    "don't",
    "students' notes",
    "\x00\x07control\x1b[31m characters",
    "<script>alert(1)</script>",
    "   leading spaces, then words",
]


@pytest.mark.parametrize("message", HOSTILE_MESSAGES)
def test_the_fallback_is_always_a_valid_title(message: str) -> None:
    title = fallback_title(message)
    assert Title(text=title).text == title
    # And the event contract takes it.
    ConversationTitled(
        correlation_id="c", tenant_id="t", conversation_id="v", turn_id="u",
        title=title, source="fallback",
    )  # fmt: skip


def test_the_fallback_takes_the_first_words_of_the_first_prose_line() -> None:
    message = "# How do I **reverse** a list in `Python`?\n\n```python\nxs = [1]\n```"
    assert fallback_title(message) == "How do I reverse a list in Python?"


def test_the_fallback_skips_a_leading_code_block_for_the_prose_after_it() -> None:
    assert fallback_title("```\nTraceback (most recent call last)\n```\nwhy this error") == (
        "Why this error"
    )


def test_the_fallback_keeps_at_most_eight_words_within_the_limit() -> None:
    title = fallback_title("one two three four five six seven eight nine ten")
    assert title == "One two three four five six seven eight"
    assert len(fallback_title("a" * 300)) == TITLE_MAX_CHARS


def test_the_fallback_for_a_message_without_words_is_the_default_title() -> None:
    assert fallback_title("\U0001f389 \U0001f389") == DEFAULT_TITLE
    assert fallback_title("") == DEFAULT_TITLE


def test_a_reasoning_model_is_asked_with_room_to_think_and_no_newline_stop() -> None:
    assert title_call_limits(1024, 0.2, reasoning=True) == {"max_completion_tokens": 1024}
    assert title_call_limits(24, 0.2, reasoning=False) == {
        "max_tokens": 24,
        "temperature": 0.2,
        "stop": ["\n"],
    }
