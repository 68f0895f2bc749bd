"""What a title may look like: the model's answer validated, and a fallback always valid."""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts import TITLE_MAX_CHARS

__all__ = [
    "DEFAULT_TITLE",
    "ModelTitle",
    "Title",
    "TitleRejected",
    "fallback_title",
    "validate_model_title",
]

DEFAULT_TITLE = "New conversation"

_FALLBACK_WORDS = 8
_LEFT, _RIGHT = "\u2018", "\u2019"  # typographic single quotes; the right one is also an apostrophe
_DOUBLE_QUOTES = '"\u201c\u201d\u201e\u00ab\u00bb'  # never part of a title
_SINGLE_QUOTES = "'" + _LEFT + _RIGHT  # fine as an apostrophe (don't), not as quotation marks
_QUOTE_PAIRS = {
    '"': '"',
    "'": "'",
    "`": "`",
    "\u201c": "\u201d",
    "\u201e": "\u201c",
    _LEFT: _RIGHT,
    "\u00ab": "\u00bb",
}
_MARKDOWN_CHARS = "#*`"
_MARKDOWN_START = re.compile(r"^(?:[-+>]\s|\d+[.)]\s)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_LABEL = re.compile(r"^title\s*:\s*", re.IGNORECASE)
# What reasoning models think aloud before answering. Some chat templates open the
# block in the prompt, so the answer may hold only its end.
_REASONING_END = re.compile(r"</(?:think|thinking|reasoning)>", re.IGNORECASE)
_REASONING_START = re.compile(r"<(?:think|thinking|reasoning)>", re.IGNORECASE)
_PREAMBLE = re.compile(rf"^(?:sure|certainly|of course|here is|here['{_RIGHT}]s)\b", re.IGNORECASE)
_LINE_BREAKING = ("Cc", "Zl", "Zp")  # control characters, line and paragraph separators
_CODE_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)


class TitleRejected(ValueError):
    """The model's answer is not a usable title; `reason` is fed back to the model."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Title(BaseModel):
    """A title as shown in a conversation list: one short plain line."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(min_length=1, max_length=TITLE_MAX_CHARS)

    @field_validator("text")
    @classmethod
    def _plain_one_line(cls, text: str) -> str:
        if any(unicodedata.category(ch) in _LINE_BREAKING for ch in text):
            raise ValueError("it must be a single line")
        if text != text.strip():
            raise ValueError("it must not start or end with spaces")
        if not any(ch.isalnum() for ch in text):
            raise ValueError("it must contain words")
        if any(ch in _DOUBLE_QUOTES for ch in text) or _has_quoting_single_quote(text):
            raise ValueError("it must not contain quotation marks")
        if any(ch in _MARKDOWN_CHARS for ch in text) or _MARKDOWN_START.match(text) or "](" in text:
            raise ValueError("it must be plain text, without markdown")
        if text.endswith("."):
            raise ValueError("it must not end with a period")
        return text


class ModelTitle(Title):
    """A title as the utility model answered it, after trivial normalisation."""

    @field_validator("text", mode="before")
    @classmethod
    def _normalise(cls, value: object) -> object:
        # Only wrappers that cannot change the meaning are removed; anything else is
        # refused, so the model gets feedback rather than a silently rewritten title.
        if not isinstance(value, str):
            return value
        text = _without_reasoning(value).strip()
        if _REASONING_START.search(text):
            raise ValueError("it must be the title alone: finish thinking, then answer")
        text = _LABEL.sub("", text).strip()
        if len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
            text = text[1:-1].strip()
        if text.endswith(".") and not text.endswith(".."):
            text = text[:-1].rstrip()
        return text

    @field_validator("text")
    @classmethod
    def _no_preamble(cls, text: str) -> str:
        if _PREAMBLE.match(text):
            raise ValueError("it must be the title alone, without an introduction")
        return text


def _without_reasoning(answer: str) -> str:
    """The answer after a reasoning model's thinking (unfinished thinking stays, to be refused)."""
    ends = list(_REASONING_END.finditer(answer))
    return answer[ends[-1].end() :] if ends else answer


def validate_model_title(output: str) -> str:
    """The title in a model's answer, or TitleRejected with a reason the model can act on."""
    try:
        return ModelTitle(text=output).text
    except ValidationError as exc:
        raise TitleRejected(_reason(exc)) from None


def fallback_title(user_message: str) -> str:
    """A title made from the first words of the user's message; always a valid Title."""
    without_code = _CODE_FENCE.sub("\n", user_message)
    # Prefer prose; a message that is only code still gives its first line.
    for source in (without_code, user_message):
        for line in source.splitlines():
            candidate = _first_words(_plain(line))
            if candidate is not None:
                return candidate
    return DEFAULT_TITLE


def _plain(line: str) -> str:
    line = _LINK.sub(r"\1", line)
    # Markup and quotes go without a trace ("**bold**" -> "bold"); breaks become spaces.
    dropped = _MARKDOWN_CHARS + _DOUBLE_QUOTES + "~>"
    chars = [
        ""
        if ch in dropped or (ch in _SINGLE_QUOTES and not _between_letters(line, i))
        else " "
        if unicodedata.category(ch) in _LINE_BREAKING
        else ch
        for i, ch in enumerate(line)
    ]
    line = " ".join("".join(chars).split())
    while (marker := _MARKDOWN_START.match(line)) is not None:
        line = line[marker.end() :]
    return line


def _first_words(line: str) -> str | None:
    words = line.split()[:_FALLBACK_WORDS]
    text = " ".join(words)
    if len(text) > TITLE_MAX_CHARS:
        cut = text[: TITLE_MAX_CHARS + 1]
        space = cut.rfind(" ")
        # Cut between words when that keeps a useful length; else a long token is cut hard.
        text = cut[:space] if space >= TITLE_MAX_CHARS // 2 else cut[:TITLE_MAX_CHARS]
    text = text.rstrip(" .,;:-\u2013\u2014" + _SINGLE_QUOTES).strip()  # also en and em dashes
    if text[:1].islower():
        text = text[0].upper() + text[1:]
    try:
        return Title(text=text).text
    except ValidationError:
        return None


def _has_quoting_single_quote(text: str) -> bool:
    return any(ch in _SINGLE_QUOTES and not _between_letters(text, i) for i, ch in enumerate(text))


def _between_letters(text: str, i: int) -> bool:
    return 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()


def _reason(exc: ValidationError) -> str:
    error = exc.errors()[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "string_too_long":
        return f"it is longer than {TITLE_MAX_CHARS} characters"
    if error["type"] == "string_too_short":
        return "it is empty"
    return message
