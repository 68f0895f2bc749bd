"""Structured output on the Messages API: a forced tool whose input is the answer.

OpenAI's `response_format` becomes one tool, named after the schema, with the
schema as its `input_schema`, and a tool_choice that forces it. The tool_use
block's input then streams back as the answer's text, and its stop_reason
`tool_use` as finish `stop`: the client sees JSON text, as OpenAI sends it.

Why not always Anthropic's native `output_config.format`: llama.cpp's
/v1/messages ignores it (it answered prose), while it constrains a forced tool's
input by grammar; Claude models take forced tools too. But a forced tool leaves
no choice among the client's own tools, so a request with tools gets the native
format instead (`native_format_fields`), and the model may call a tool or answer
in the schema; the generator's check at the end says whether the answer fit.
The fields the adapter has no way to express are refused by name instead of
dropped, since the gateway checks only a turn's first model and a fallback can
land here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contracts import ChatRequest, GenerationParams, ResponseFormat
from services.generator.errors import ProviderError

if TYPE_CHECKING:
    from services.generator.adapters.anthropic_provider import MessagesEvent

__all__ = ["JsonAnswer", "answer_tool_fields", "native_format_fields", "refuse_inexpressible"]

_INEXPRESSIBLE = (
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "reasoning_effort",
    # The Messages API gives no log probabilities (the gateway leaves false unset).
    "logprobs",
)
_DEFAULT_NAME = "json_answer"
_DEFAULT_DESCRIPTION = "Give the answer as this JSON object."


def refuse_inexpressible(params: GenerationParams, model: str) -> None:
    """invalid_request naming the first field set that the Messages API has no knob for."""
    for field in _INEXPRESSIBLE:
        if getattr(params, field) is not None:
            raise ProviderError("invalid_request", f"{field} is not supported by {model}")


def answer_tool_fields(request: ChatRequest, model: str) -> dict[str, Any]:
    """`tools` and `tool_choice` forcing the one tool whose input is the answer."""
    shape = request.params.response_format
    assert shape is not None
    tool: dict[str, Any] = {
        "name": shape.name or _DEFAULT_NAME,
        "description": shape.description or _DEFAULT_DESCRIPTION,
        "input_schema": _object_schema(shape, model),
    }
    if shape.strict is not None:
        tool["strict"] = shape.strict
    return {
        "tools": [tool],
        "tool_choice": {"type": "tool", "name": tool["name"], "disable_parallel_tool_use": True},
    }


def native_format_fields(request: ChatRequest, model: str) -> dict[str, Any]:
    """`output_config.format`: the answer's text is JSON in the schema (Claude's own
    structured outputs), leaving the client's tools free to be called."""
    shape = request.params.response_format
    assert shape is not None
    schema = _object_schema(shape, model)
    return {"output_config": {"format": {"type": "json_schema", "schema": schema}}}


def _object_schema(shape: ResponseFormat, model: str) -> dict[str, Any]:
    schema = shape.json_schema if shape.type == "json_schema" else None
    if not schema:
        return {"type": "object"}
    if schema.get("type") != "object":
        # A tool's input is always an object; anything else cannot be expressed.
        raise ProviderError(
            "invalid_request",
            f'response_format needs a schema of "type": "object" for {model}',
        )
    return schema


class JsonAnswer:
    """The answer tool's input, out of a Messages stream, as answer text.

    Text blocks are left out: a forced tool is not preceded by any (Anthropic
    prefills the call), and text around the JSON would make it unreadable.
    """

    __slots__ = ("_block", "_done", "_started")

    def __init__(self) -> None:
        self._block: int | None = None  # the content block of the answer
        self._started = False  # some of its input has come
        self._done = False

    @property
    def seen(self) -> bool:
        """Whether the answer's block began."""
        return self._block is not None

    def text(self, event: MessagesEvent) -> str:
        """The piece of the answer an event carries ("" for none)."""
        if event.tool_use is not None:
            if self._block is None:
                self._block = event.block
            return ""
        if event.block is None or event.block != self._block or self._done:
            return ""
        if event.partial_json is not None:
            self._started = self._started or bool(event.partial_json)
            return event.partial_json
        if event.kind == "content_block_stop":
            self._done = True
            if not self._started:
                return "{}"  # a call with no input streams no JSON
        return ""
