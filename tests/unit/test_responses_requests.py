"""A Responses request read into a turn: input items, tools, parameters, or refused by name."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts import ChatMessage, ResponseFormat, ToolCall, ToolChoice
from services.gateway.http.errors import ApiError
from services.gateway.responses.ids import StoredTurn, parse_response_id, response_id
from services.gateway.responses.schema import ResponseRequest
from services.gateway.responses.translate import (
    ResponseTurn,
    check_answered,
    read_request,
    with_instructions,
)
from services.runtime.catalog import parse_catalog

CATALOG = parse_catalog(
    """
[models.m]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "m"
"""
)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


def read(**fields: Any) -> ResponseTurn:
    body = ResponseRequest.model_validate({"model": "m", "input": "hi", **fields})
    return read_request(body, CATALOG.models["m"])


def refusal(**fields: Any) -> ApiError:
    with pytest.raises(ApiError) as refused:
        read(**fields)
    return refused.value


def test_a_string_input_is_one_user_message() -> None:
    assert read().input == (ChatMessage(role="user", content="hi"),)


def test_input_items_become_the_bus_messages_with_calls_joined_to_one_assistant_message() -> None:
    turn = read(
        input=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "input_text", "text": "Weather"},
                                         {"type": "input_text", "text": " in Paris?"}]},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "Looking.", "annotations": []}]},
            {"type": "function_call", "call_id": "c1", "name": "get_weather",
             "arguments": '{"city": "Paris"}', "id": "fc_1", "status": "completed"},
            {"type": "function_call", "call_id": "c2", "name": "get_weather",
             "arguments": '{"city": "Lyon"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2",
             "output": [{"type": "input_text", "text": "rain"}]},
        ]
    )  # fmt: skip
    assert [(m.role, m.content) for m in turn.input] == [
        ("system", "Be brief."),
        ("user", "Weather in Paris?"),
        ("assistant", "Looking."),
        ("tool", "sunny"),
        ("tool", "rain"),
    ]
    assert turn.input[2].tool_calls == (
        ToolCall(id="c1", name="get_weather", arguments='{"city": "Paris"}'),
        ToolCall(id="c2", name="get_weather", arguments='{"city": "Lyon"}'),
    )
    assert [m.tool_call_id for m in turn.input[3:]] == ["c1", "c2"]


def test_function_tools_in_the_responses_shape_and_the_choice_travel_as_contracts() -> None:
    turn = read(tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"})
    assert [(t.name, t.parameters, t.strict) for t in turn.tools] == [
        ("get_weather", WEATHER["parameters"], False)
    ]
    assert turn.tool_choice == ToolChoice(mode="function", name="get_weather")
    assert turn.settings["tools"][0]["name"] == "get_weather"
    assert turn.settings["tool_choice"] == {"type": "function", "name": "get_weather"}


def test_generation_settings_and_structured_output_reach_the_params() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    turn = read(
        max_output_tokens=50,
        temperature=0.5,
        top_p=0.9,
        text={"format": {"type": "json_schema", "name": "place", "schema": schema}},
    )
    assert (turn.params.max_tokens, turn.params.temperature, turn.params.top_p) == (50, 0.5, 0.9)
    assert turn.params.response_format == ResponseFormat(
        type="json_schema", name="place", json_schema=schema
    )
    assert turn.settings["text"]["format"]["schema"] == schema
    assert read(text={"format": {"type": "json_object"}}).params.response_format == ResponseFormat(
        type="json_object"
    )
    assert read(text={"format": {"type": "text"}}).params.response_format is None


def test_the_echo_has_openais_defaults_for_what_was_not_sent() -> None:
    settings = read().settings
    assert (settings["temperature"], settings["top_p"], settings["tool_choice"]) == (
        1.0,
        1.0,
        "auto",
    )
    assert (settings["metadata"], settings["store"], settings["tools"]) == ({}, True, [])


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools.0"),
        ({"tools": [WEATHER, {"type": "code_interpreter", "container": "x"}]}, "tools.1"),
        ({"tools": [WEATHER], "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"background_options": {"x": 1}}, "background_options"),
        ({"reasoning": {"effort": "low"}}, "reasoning"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input.0"),
        ({"text": {"verbosity": "low"}}, "text.verbosity"),
    ],
)
def test_what_cannot_be_honoured_is_refused_naming_it(fields: dict[str, Any], param: str) -> None:
    refused = refusal(**fields)
    assert (refused.status, refused.code, refused.param) == (400, "unsupported_parameter", param)


def test_a_background_response_must_be_stored() -> None:
    refused = refusal(background=True, store=False)
    assert (refused.status, refused.code, refused.param) == (400, "invalid_value", "background")
    assert read(background=True).settings["background"] is True


def test_harmless_values_of_refused_fields_pass() -> None:
    read(background=False, include=[], reasoning=None, truncation="disabled", service_tier="auto")


def test_an_image_input_is_unsupported_content_naming_the_part() -> None:
    refused = refusal(
        input=[{"role": "user", "content": [{"type": "input_image", "image_url": "https://x"}]}]
    )
    assert (refused.code, refused.param) == ("unsupported_content", "input.0.content.0")


@pytest.mark.parametrize(
    "fields",
    [
        {"input": ""},
        {"input": []},
        {"tool_choice": "required"},
        {"tools": [WEATHER], "tool_choice": {"type": "function", "name": "other"}},
        {"tools": [WEATHER, WEATHER]},
        {"tools": [{**WEATHER, "parameters": {"type": "string"}}]},
        {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{no"}]},
        {"metadata": {f"k{n}": "v" for n in range(17)}},
        {"temperature": 3},
    ],
)
def test_bad_input_is_a_validation_error(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ResponseRequest.model_validate({"model": "m", "input": "hi", **fields})


def test_an_output_must_answer_a_call_of_the_input_or_of_the_previous_response() -> None:
    output = ChatMessage(role="tool", content="sunny", tool_call_id="c1")
    with pytest.raises(ApiError) as refused:
        check_answered((output,))
    assert refused.value.param == "input"
    check_answered((output,), pending=(ToolCall(id="c1", name="f", arguments="{}"),))


def test_instructions_lead_this_turn_only() -> None:
    history = (ChatMessage(role="user", content="hi"),)
    assert with_instructions(None, history) == history
    assert with_instructions("Be brief.", history)[0] == ChatMessage(
        role="system", content="Be brief."
    )


def test_a_stored_response_id_names_its_conversation_and_turn() -> None:
    rid = response_id("conv123", "abc", stored=True)
    assert parse_response_id(rid) == StoredTurn("conv123", "abc")
    for never_stored in (response_id("abc", "abc", stored=False), "resp_", "x_a_b", "resp_a_b_c"):
        assert parse_response_id(never_stored) is None
