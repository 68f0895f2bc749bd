"""Strict mode's subset of JSON Schema, checked at the edge with the part at fault named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.gateway.openai.schema import ChatCompletionRequest
from services.gateway.openai.strict_schema import strict_problem


def closed(properties: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **more,
    }


ADDRESS = closed({"street": {"type": "string"}, "zip": {"type": ["string", "null"]}})
GOOD = closed(
    {
        "name": {"type": "string", "pattern": "^[A-Z]"},
        "address": ADDRESS,
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "pet": {"anyOf": [closed({"cat": {"type": "boolean"}}), {"type": "null"}]},
        "home": {"$ref": "#/$defs/place"},
    },
    **{"$defs": {"place": closed({"city": {"type": "string"}})}},
)


def test_a_schema_strict_mode_takes_passes() -> None:
    assert strict_problem(GOOD) is None


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "array", "items": {"type": "string"}}, 'the root must be "type": "object"'),
        (
            {**GOOD, "additionalProperties": True},
            'the root: an object needs "additionalProperties": false',
        ),
        (
            closed({"address": {**ADDRESS, "additionalProperties": None}}),
            'properties.address: an object needs "additionalProperties": false',
        ),
        (
            {**GOOD, "required": ["name"]},
            "the root: every property must be required (make 'address' nullable",
        ),
        (
            closed({"tags": {"type": "array", "items": {"type": "object", "properties": {}}}}),
            'properties.tags.items: an object needs "additionalProperties": false',
        ),
        (
            closed({"pet": {"anyOf": [{"type": "object", "properties": {"a": {}}}]}}),
            'properties.pet.anyOf.0: an object needs "additionalProperties": false',
        ),
        (
            closed({"n": {"allOf": [{"type": "integer"}]}}),
            "properties.n: 'allOf' is not supported in strict mode",
        ),
        (
            {**GOOD, "$defs": {"place": {"type": "object", "properties": {"c": {}}}}},
            '$defs.place: an object needs "additionalProperties": false',
        ),
    ],
)
def test_what_strict_mode_refuses_is_named(schema: dict[str, Any], problem: str) -> None:
    found = strict_problem(schema)
    assert found is not None
    assert found.startswith(problem)


def test_nesting_past_ten_levels_is_refused() -> None:
    schema: dict[str, Any] = closed({"leaf": {"type": "string"}})
    for _ in range(11):
        schema = closed({"child": schema})
    assert "nested deeper than 10 levels" in (strict_problem(schema) or "")


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}


def first_error(payload: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as caught:
        ChatCompletionRequest.model_validate(payload)
    error = caught.value.errors()[0]
    return tuple(error["loc"]), error["msg"]


def test_a_strict_response_format_outside_the_subset_is_refused() -> None:
    open_schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    loc, message = first_error(
        body(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "city", "strict": True, "schema": open_schema},
            }
        )
    )
    assert loc == ("response_format", "json_schema")
    assert message == 'strict mode: the root: an object needs "additionalProperties": false'


def test_the_same_schema_without_strict_is_taken() -> None:
    open_schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": open_schema}}
    ChatCompletionRequest.model_validate(body(response_format=fmt))


def test_a_strict_tool_outside_the_subset_is_refused() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "strict": True,
            "parameters": closed({"city": {"type": "string"}}, required=[]),
        },
    }
    loc, message = first_error(body(tools=[tool]))
    assert loc == ("tools", 0, "function")
    assert "every property must be required (make 'city' nullable" in message
