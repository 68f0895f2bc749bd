"""What becomes of each Responses request field and part: honoured, accepted, or refused.

As on Chat Completions (services.gateway.openai.request_fields), nothing that
would change the answer is silently dropped: a field, tool, tool_choice, input
item or content part tokenbus cannot honour is a 400 that names it. The list
follows the official `openai` SDK's `ResponseCreateParams`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.gateway.http.errors import ApiError
from services.gateway.responses.schema import (
    FunctionCallOutputItem,
    MessageItem,
    OtherContent,
    OtherItem,
    OtherTool,
    OtherToolChoice,
    ResponseRequest,
)

__all__ = ["ACCEPTED_WITHOUT_EFFECT", "REFUSED", "check_request"]

# Fields that tell OpenAI how to route, cache, bill or frame the call, never what to answer.
ACCEPTED_WITHOUT_EFFECT = frozenset(
    {
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "stream_options",
        # tokenbus drops a stored chain's oldest turns to fit, which is what "auto" asks for;
        # a request that fits is answered alike either way.
        "truncation",
    }
)

# Fields that would change the answer and that tokenbus does not carry (yet), with why.
REFUSED: Mapping[str, str] = {
    "background_options": "background options are not supported",
    "conversation": "OpenAI conversation objects are not supported; use previous_response_id",
    "prompt": "stored prompt templates are not supported",
    "reasoning": "reasoning settings are not supported",
    "max_tool_calls": "max_tool_calls is not supported",
    "top_logprobs": "logprobs are not supported on /v1/responses",
    "include": "extra output (include) is not supported",
    "context_management": "context management is not supported",
    "moderation": "moderation settings are not supported",
    "image": "image settings are not supported",
    "access_programs": "access programs are not supported",
}


def _is_harmless(field: str, value: Any) -> bool:
    """Values that ask for exactly what tokenbus does anyway."""
    if field == "include":
        return not value
    return value is None


def _refused(param: str, why: str) -> ApiError:
    return ApiError(400, f"{param}: {why}.", "unsupported_parameter", param)


def check_request(body: ResponseRequest) -> None:
    """400 unsupported_parameter (or unsupported_content) naming the first part not honoured."""
    known = set(ResponseRequest.model_fields)
    for field, value in body.model_dump(exclude_unset=True).items():
        if field in REFUSED and not _is_harmless(field, value):
            raise _refused(field, REFUSED[field])
        if field not in known and field not in REFUSED and field not in ACCEPTED_WITHOUT_EFFECT:
            raise _refused(field, "unrecognized request argument")
    if body.background and not body.store:
        # Nobody would ever read it: a background response is known only by what is stored.
        raise ApiError(
            400,
            "background: a background response must be stored; send store: true.",
            "invalid_value",
            "background",
        )
    for n, tool in enumerate(body.tools or ()):
        if isinstance(tool, OtherTool):
            raise _refused(
                f"tools.{n}",
                f"the built-in tool '{tool.type}' is not supported; send function tools",
            )
    if isinstance(body.tool_choice, OtherToolChoice):
        raise _refused("tool_choice", f"'{body.tool_choice.type}' is not supported")
    if body.text is not None and body.text.verbosity not in (None, "medium"):
        raise _refused("text.verbosity", "verbosity is not supported")
    _check_items(body)


def _check_items(body: ResponseRequest) -> None:
    if isinstance(body.input, str):
        return
    for n, item in enumerate(body.input):
        if isinstance(item, OtherItem):
            raise _refused(f"input.{n}", f"input items of type '{item.type}' are not supported")
        content = (
            item.content
            if isinstance(item, MessageItem)
            else item.output
            if isinstance(item, FunctionCallOutputItem)
            else ""
        )
        field = "content" if isinstance(item, MessageItem) else "output"
        for m, part in enumerate(() if isinstance(content, str) else content):
            if isinstance(part, OtherContent):
                raise ApiError(
                    400,
                    f"input.{n}.{field}.{m}: content of type '{part.type}' is not supported; "
                    "send input_text.",
                    "unsupported_content",
                    f"input.{n}.{field}.{m}",
                )
