"""A chat request in the Messages API's shape: system apart, turns that alternate, tools.

OpenAI's history puts each tool result in a `tool` message of its own; Anthropic
wants every result of one assistant turn as `tool_result` blocks in the next user
message, so consecutive results (and a user text after them) become one message.
"""

from __future__ import annotations

import json
import re
from typing import Any

from contracts import ChatMessage, ChatRequest, ContentPart, TextPart, ToolCall
from services.generator.errors import ProviderError

__all__ = ["to_anthropic_messages", "tool_fields"]

_CHOICE = {"auto": "auto", "none": "none", "required": "any", "function": "tool"}
# A tool without parameters still needs a schema: one that takes no arguments.
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}
_DATA_URL = re.compile(r"^data:(?P<media_type>[^;,]+);base64,(?P<data>.*)$", re.DOTALL)


def to_anthropic_messages(
    messages: tuple[ChatMessage, ...],
) -> tuple[str | None, list[dict[str, Any]]]:
    """System prompts go to `system`; the rest must alternate and start with the user."""
    system = "\n\n".join(m.content for m in messages if m.role == "system") or None
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        content = _content(message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] = _joined(turns[-1]["content"], content)
        else:
            turns.append({"role": role, "content": content})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": "(continue)"})
    return system, turns


def tool_fields(request: ChatRequest) -> dict[str, Any]:
    """`tools` and `tool_choice`, when the request offers tools (Anthropic refuses a
    choice without them)."""
    if not request.tools:
        return {}
    fields: dict[str, Any] = {
        "tools": [
            {
                "name": tool.name,
                **({"description": tool.description} if tool.description is not None else {}),
                "input_schema": tool.parameters or _NO_PARAMETERS,
                **({"strict": tool.strict} if tool.strict is not None else {}),
            }
            for tool in request.tools
        ]
    }
    choice = request.tool_choice
    mode = choice.mode if choice is not None else None
    serial = request.parallel_tool_calls is False and mode != "none"
    if mode is not None or serial:
        # Anthropic says "one call at most" on the choice; auto is its default choice.
        tool_choice: dict[str, Any] = {"type": _CHOICE[mode or "auto"]}
        if choice is not None and choice.mode == "function":
            tool_choice["name"] = choice.name
        if serial:
            tool_choice["disable_parallel_tool_use"] = True
        fields["tool_choice"] = tool_choice
    return fields


def _content(message: ChatMessage) -> str | list[dict[str, Any]]:
    if message.role == "tool":
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        if message.content:
            result["content"] = message.content
        return [result]
    if message.parts:
        return [block for part in message.parts for block in _part_blocks(part)]
    if not message.tool_calls:
        return message.content
    return [*_blocks(message.content), *(_tool_use(call) for call in message.tool_calls)]


def _part_blocks(part: ContentPart) -> list[dict[str, Any]]:
    if isinstance(part, TextPart):
        return _blocks(part.text)
    # Anthropic has no detail setting: it sizes images itself.
    url = part.url or ""
    inline = _DATA_URL.match(url)
    if inline is not None:
        source = {"type": "base64", "media_type": inline["media_type"], "data": inline["data"]}
    else:
        source = {"type": "url", "url": url}
    return [{"type": "image", "source": source}]


def _tool_use(call: ToolCall) -> dict[str, Any]:
    try:
        arguments = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise ProviderError(
            "invalid_request", "A tool call's arguments must be a JSON object for this model."
        )
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments}


def _joined(
    first: str | list[dict[str, Any]], second: str | list[dict[str, Any]]
) -> str | list[dict[str, Any]]:
    """Two messages of one role as one; text alone stays text, as it always has."""
    if isinstance(first, str) and isinstance(second, str):
        return first + "\n\n" + second
    return [*_blocks(first), *_blocks(second)]


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return content
    # Anthropic refuses an empty text block.
    return [{"type": "text", "text": content}] if content else []
