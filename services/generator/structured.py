"""Structured output: does a finished answer fit the request's response_format, and the retry.

The check is jsonschema's (the maintained validator), never hand-written rules:
`json_object` asks for any JSON object, `json_schema` for JSON valid against the
schema. Its message is for the developer who sent the schema; it is put on the
bus and in the answer's error, never in a log line.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from contracts import ChatMessage, ChatRequest, FinishReason, ResponseFormat

__all__ = ["MAX_ERROR_CHARS", "checked_finish", "output_error", "with_feedback"]

MAX_ERROR_CHARS = 500

# An answer that is calls, was cut by the client or filtered is not the requested
# document: nothing to check. A "length" answer is checked, but never asked again.
_CHECKED: frozenset[FinishReason] = frozenset({"stop", "length"})


def checked_finish(reason: FinishReason) -> bool:
    return reason in _CHECKED


def output_error(response_format: ResponseFormat, text: str) -> str | None:
    """None when `text` fits the format; else what is wrong, in the validator's words."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        # json's message gives a position, never the text itself.
        return _short(f"The answer is not JSON: {exc}")
    if response_format.type == "json_object" or response_format.json_schema is None:
        if not isinstance(document, dict):
            return f"The answer is JSON but not an object (it is {_json_type(document)})."
        return None
    schema = response_format.json_schema
    validator = validator_for(schema)(schema)
    error = best_match(validator.iter_errors(document))
    if error is None:
        return None
    where = error.json_path if error.path else "$"
    return _short(f"The answer does not fit the schema at {where}: {error.message}")


def with_feedback(request: ChatRequest, answer: str, error: str) -> ChatRequest:
    """The request asked again: the invalid answer, then what was wrong with it."""
    feedback = (
        f"That answer was rejected. {error} "
        "Answer again with only the JSON, fitting the required format exactly."
    )
    messages = (
        *request.messages,
        ChatMessage(role="assistant", content=answer),
        ChatMessage(role="user", content=feedback),
    )
    return request.model_copy(update={"messages": messages})


def _json_type(document: Any) -> str:
    if isinstance(document, list):
        return "an array"
    if isinstance(document, str):
        return "a string"
    if isinstance(document, bool):
        return "a boolean"
    if isinstance(document, int | float):
        return "a number"
    return "null"


def _short(message: str) -> str:
    if len(message) <= MAX_ERROR_CHARS:
        return message
    return message[: MAX_ERROR_CHARS - 1] + "…"
