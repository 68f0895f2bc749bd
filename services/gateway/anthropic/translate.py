"""A Messages API request as the Chat Completions request tokenbus already serves.

Anthropic's shape maps onto OpenAI's field by field: `system` becomes a system
message, a user message's `tool_result` blocks become `tool` messages (before its
text, which answers them), an assistant's `tool_use` blocks become its
`tool_calls`, image blocks become `image_url` parts, `stop_sequences` is `stop`,
`tool_choice` any/tool is required/named, `output_config.format` is a
`json_schema` response format. From there every check of the Chat Completions
path applies (the model, its context, tools and vision, request fields), so the
two surfaces cannot drift apart. What has no counterpart is refused by name.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from services.gateway.anthropic.schema import (
    ImageBlock,
    MessageParam,
    MessagesRequest,
    OtherBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from services.gateway.http.errors import ApiError
from services.gateway.openai.schema import ChatCompletionRequest

__all__ = ["to_chat_completion"]

# Known Messages API fields that would change the answer and have no counterpart here.
_REFUSED = {
    "top_k": "top_k is not supported; use temperature or top_p",
    "thinking": "extended thinking is not supported",
    "container": "containers are not supported",
    "mcp_servers": "MCP servers are not supported",
    "context_management": "context management is not supported",
}


def to_chat_completion(body: MessagesRequest) -> ChatCompletionRequest:
    _refuse_uncarried(body)
    payload: dict[str, Any] = {
        "model": body.model,
        "messages": [*_system(body), *_messages(body.messages)],
        "stream": body.stream,
        "max_tokens": body.max_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stop": body.stop_sequences,
        **_tools(body),
    }
    if body.output_config is not None and body.output_config.format is not None:
        schema = body.output_config.format.schema_
        payload["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema},
        }
    try:
        return ChatCompletionRequest.model_validate(
            {k: v for k, v in payload.items() if v is not None}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(
            400, f"{where}: {first['msg']} (as a chat request)", "invalid_value", where
        ) from None


def _refuse_uncarried(body: MessagesRequest) -> None:
    for field, why in _REFUSED.items():
        value = getattr(body, field)
        if value is None or (field == "thinking" and value.get("type") == "disabled"):
            continue
        raise ApiError(400, f"{field}: {why}.", "unsupported_parameter", field)
    if body.output_config is not None and body.output_config.effort is not None:
        raise ApiError(
            400,
            "output_config.effort: effort is not supported.",
            "unsupported_parameter",
            "output_config.effort",
        )
    for n, tool in enumerate(body.tools or ()):
        if tool.type not in (None, "custom"):
            raise ApiError(
                400,
                f"tools.{n}: server tools ({tool.type}) are not supported; send client tools.",
                "unsupported_parameter",
                f"tools.{n}",
            )


def _system(body: MessagesRequest) -> list[dict[str, Any]]:
    if body.system is None:
        return []
    text = body.system if isinstance(body.system, str) else "\n\n".join(b.text for b in body.system)
    return [{"role": "system", "content": text}] if text else []


def _messages(messages: list[MessageParam]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, message in enumerate(messages):
        if isinstance(message.content, str):
            out.append({"role": message.role, "content": message.content})
        elif message.role == "assistant":
            out.append(_assistant(n, message.content))
        else:
            out.extend(_user(n, message.content))
    return out


def _assistant(n: int, blocks: list[Any]) -> dict[str, Any]:
    text, calls = [], []
    for m, block in enumerate(blocks):
        if isinstance(block, TextBlock):
            text.append(block.text)
        elif isinstance(block, ToolUseBlock):
            function = {"name": block.name, "arguments": json.dumps(block.input)}
            calls.append({"id": block.id, "type": "function", "function": function})
        else:
            raise _unsupported_block(f"messages.{n}.content.{m}", block, "assistant")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _user(n: int, blocks: list[Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for m, block in enumerate(blocks):
        if isinstance(block, ToolResultBlock):
            results.append(_tool_result(block))
        elif isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block)}})
        else:
            raise _unsupported_block(f"messages.{n}.content.{m}", block, "user")
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        content = "".join(p["text"] for p in parts) if only_text else parts
        results.append({"role": "user", "content": content})
    return results


def _tool_result(block: ToolResultBlock) -> dict[str, Any]:
    content = block.content
    text = content if isinstance(content, str) else "".join(b.text for b in content)
    # OpenAI's tool message has no error flag: the model is told in the text instead.
    if block.is_error:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": block.tool_use_id, "content": text}


def _image_url(block: ImageBlock) -> str:
    source = block.source
    if source.type == "base64":
        return f"data:{source.media_type};base64,{source.data}"
    return source.url


def _unsupported_block(param: str, block: Any, role: str) -> ApiError:
    kind = block.type if isinstance(block, OtherBlock | ImageBlock) else "this"
    return ApiError(
        400,
        f"{param}: {kind} blocks are not supported in {role} messages.",
        "unsupported_content",
        param,
    )


def _tools(body: MessagesRequest) -> dict[str, Any]:
    if not body.tools:
        return {}
    fields: dict[str, Any] = {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "parameters": t.input_schema,
                    **({"description": t.description} if t.description is not None else {}),
                    **({"strict": t.strict} if t.strict is not None else {}),
                },
            }
            for t in body.tools
        ]
    }
    choice = body.tool_choice
    if choice is not None:
        if choice.type == "tool":
            fields["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        else:
            fields["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
        if choice.disable_parallel_tool_use:
            fields["parallel_tool_calls"] = False
    return fields
