"""Tool fields of a Chat Completions body: translated to the bus request, or refused by name."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts import ChatMessage, ChatRequest, Limits, ToolChoice
from services.gateway.admission.gate import worst_case_prompt_tokens
from services.gateway.caller import Caller
from services.gateway.config import GatewaySettings
from services.gateway.http.errors import ApiError
from services.gateway.openai.completions import to_chat_request
from services.gateway.openai.schema import ChatCompletionRequest
from services.runtime.catalog import parse_catalog

CATALOG = parse_catalog(
    """
[models.tooled]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "tooled"
context_window = 1024

[models.plain]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "plain"
tools = false
"""
)
CALLER = Caller(tenant_id="t", user_id="u", key_id="k", key_limits=Limits())
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def request(**fields: Any) -> ChatRequest:
    body = {"model": "tooled", "messages": [{"role": "user", "content": "hi"}], **fields}
    parsed = ChatCompletionRequest.model_validate(body)
    return to_chat_request(parsed, GatewaySettings(), CATALOG, CALLER, "c1").request


def test_tools_and_the_choice_travel_on_the_bus_request() -> None:
    r = request(
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    assert [t.name for t in r.tools] == ["get_weather"]
    assert r.tools[0].parameters == WEATHER["function"]["parameters"]  # type: ignore[index]
    assert r.tool_choice == ToolChoice(mode="function", name="get_weather")
    assert r.parallel_tool_calls is False


def test_a_request_without_tools_serialises_as_before() -> None:
    wire = request().model_dump(mode="json")
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(wire)
    assert wire["messages"] == [{"role": "user", "content": "hi"}]


def test_a_model_without_tools_refuses_them_by_name() -> None:
    body = ChatCompletionRequest.model_validate(
        {"model": "plain", "messages": [{"role": "user", "content": "hi"}], "tools": [WEATHER]}
    )
    with pytest.raises(ApiError) as refused:
        to_chat_request(body, GatewaySettings(), CATALOG, CALLER, "c1")
    assert (refused.value.status, refused.value.code, refused.value.param) == (
        400,
        "unsupported_parameter",
        "tools",
    )


def test_tool_definitions_count_toward_the_context_and_the_budget() -> None:
    big = {**WEATHER, "function": {**WEATHER["function"], "description": "x" * 4000}}  # type: ignore[dict-item]
    with pytest.raises(ApiError) as refused:
        request(tools=[big])
    assert refused.value.code == "context_length_exceeded"
    message = (ChatMessage(role="user", content="hi"),)
    tooled = request(tools=[WEATHER])
    assert worst_case_prompt_tokens(message, tooled.tools) > worst_case_prompt_tokens(message)


@pytest.mark.parametrize(
    "fields",
    [
        {"tools": [{"type": "function", "function": {"parameters": {"type": "object"}}}]},
        {"tools": [{"type": "function",
                    "function": {"name": "f", "parameters": {"type": "array"}}}]},
        {"tools": [{"type": "function", "function": {"name": "f",
                    "parameters": {"type": "object", "properties": 5}}}]},
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}},
        {"messages": [{"role": "user", "content": "hi"},
                      {"role": "tool", "tool_call_id": "call_x", "content": "r"}]},
        {"messages": [{"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function",
             "function": {"name": "f", "arguments": "{not json"}}]}]},
    ],
)  # fmt: skip
def test_tool_fields_that_cannot_be_right_do_not_validate(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(
            {"model": "tooled", "messages": [{"role": "user", "content": "hi"}], **fields}
        )
