"""A Responses request as tokenbus reads it: the input as bus messages, tools, parameters."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from contracts import (
    ChatMessage,
    FunctionTool,
    GenerationParams,
    ResponseFormat,
    ToolCall,
    ToolChoice,
)
from services.gateway.catalog import check_output_limit
from services.gateway.http.errors import ApiError
from services.gateway.openai.tools import check_tools_supported
from services.gateway.responses.fields import check_request
from services.gateway.responses.schema import (
    Content,
    FunctionCallItem,
    FunctionCallOutputItem,
    FunctionToolChoice,
    FunctionToolInput,
    JsonSchemaText,
    MessageItem,
    ResponseRequest,
    TextContent,
)
from services.runtime.catalog import ModelEntry

__all__ = [
    "ResponseTurn",
    "check_answered",
    "read_request",
    "with_instructions",
]


@dataclass(frozen=True, slots=True)
class ResponseTurn:
    """What one response asks of the model, before it is placed in a conversation or not."""

    input: tuple[ChatMessage, ...]
    instructions: str | None
    tools: tuple[FunctionTool, ...]
    tool_choice: ToolChoice | None
    parallel_tool_calls: bool | None
    params: GenerationParams
    settings: dict[str, Any]
    """The request's settings as the response object echoes them back."""


def read_request(body: ResponseRequest, entry: ModelEntry) -> ResponseTurn:
    """The turn a request asks for, or the 400 that names what cannot be honoured."""
    check_request(body)
    check_output_limit(entry, body.max_output_tokens)
    tools = tuple(_tool(t) for t in body.tools or () if isinstance(t, FunctionToolInput))
    check_tools_supported(entry, tools)
    return ResponseTurn(
        input=_messages(body),
        instructions=body.instructions,
        tools=tools,
        tool_choice=_tool_choice(body),
        parallel_tool_calls=body.parallel_tool_calls,
        params=GenerationParams(
            max_tokens=body.max_output_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            response_format=_response_format(body),
        ),
        settings=_settings(body, tools),
    )


def check_answered(messages: tuple[ChatMessage, ...], pending: tuple[ToolCall, ...] = ()) -> None:
    """400 for a function_call_output that answers no call of the input or of the history."""
    called = {c.id for c in pending}
    for message in messages:
        called.update(c.id for c in message.tool_calls)
        if message.role == "tool" and message.tool_call_id not in called:
            raise ApiError(
                400,
                f"input: no function call with call_id '{message.tool_call_id}' comes before "
                "its function_call_output (in the input, or as the previous response's last).",
                "invalid_value",
                "input",
            )


def with_instructions(
    instructions: str | None, messages: tuple[ChatMessage, ...]
) -> tuple[ChatMessage, ...]:
    """The messages for this turn only: instructions are not carried to the next response."""
    if instructions is None:
        return messages
    return (ChatMessage(role="system", content=instructions), *messages)


def _text(content: str | list[Content]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextContent))


def _messages(body: ResponseRequest) -> tuple[ChatMessage, ...]:
    if isinstance(body.input, str):
        return (ChatMessage(role="user", content=body.input),)
    messages: list[ChatMessage] = []
    for item in body.input:
        if isinstance(item, MessageItem):
            role = "system" if item.role == "developer" else item.role
            messages.append(ChatMessage(role=role, content=_text(item.content)))
        elif isinstance(item, FunctionCallItem):
            call = ToolCall(id=item.call_id, name=item.name, arguments=item.arguments)
            last = messages[-1] if messages else None
            # Calls the model made together are one assistant message on the bus, as
            # every provider takes them (and its text, if the input had it just before).
            if last is not None and last.role == "assistant":
                messages[-1] = last.model_copy(update={"tool_calls": (*last.tool_calls, call)})
            else:
                messages.append(ChatMessage(role="assistant", content="", tool_calls=(call,)))
        elif isinstance(item, FunctionCallOutputItem):
            messages.append(
                ChatMessage(role="tool", content=_text(item.output), tool_call_id=item.call_id)
            )
    return tuple(messages)


def _tool(tool: FunctionToolInput) -> FunctionTool:
    return FunctionTool(
        name=tool.name, description=tool.description, parameters=tool.parameters, strict=tool.strict
    )


def _tool_choice(body: ResponseRequest) -> ToolChoice | None:
    choice = body.tool_choice
    if choice is None:
        return None
    if isinstance(choice, FunctionToolChoice):
        return ToolChoice(mode="function", name=choice.name)
    assert isinstance(choice, str)  # anything else was refused by check_request
    return ToolChoice(mode=choice)


def _response_format(body: ResponseRequest) -> ResponseFormat | None:
    fmt = body.text.format if body.text is not None else None
    if isinstance(fmt, JsonSchemaText):
        return ResponseFormat(
            type="json_schema",
            name=fmt.name,
            description=fmt.description,
            json_schema=fmt.schema_,
            strict=fmt.strict,
        )
    if fmt is not None and fmt.type == "json_object":
        return ResponseFormat(type="json_object")
    return None


def _settings(body: ResponseRequest, tools: tuple[FunctionTool, ...]) -> dict[str, Any]:
    """The response object's echo of the request, with OpenAI's defaults for what was not sent."""
    fmt = body.text.format if body.text is not None else None
    text_format: dict[str, Any] = (
        {"type": "text"} if fmt is None else fmt.model_dump(mode="json", by_alias=True)
    )
    choice = body.tool_choice
    return {
        "background": bool(body.background),
        "created_at": int(time.time()),
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "metadata": body.metadata or {},
        "model": body.model,
        "parallel_tool_calls": True
        if body.parallel_tool_calls is None
        else body.parallel_tool_calls,
        "previous_response_id": body.previous_response_id,
        "store": body.store,
        "temperature": 1.0 if body.temperature is None else body.temperature,
        "text": {"format": text_format, "verbosity": "medium"},
        "tool_choice": choice.model_dump(mode="json")
        if isinstance(choice, FunctionToolChoice)
        else choice or "auto",
        "tools": [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
                "strict": t.strict,
            }
            for t in tools
        ],
        "top_p": 1.0 if body.top_p is None else body.top_p,
        "user": body.user,
    }
