"""Function tools as clients send them (OpenAI's shape), for every API that takes tools.

Chat Completions and the conversations API both accept the same `tools`,
`tool_choice` and `parallel_tool_calls`, validated alike, and hand the bus the
contract's form.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any, Literal

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, model_validator
from pydantic_core import PydanticCustomError

from contracts import FunctionTool, ToolChoice, ToolName
from services.gateway.http.errors import ApiError
from services.gateway.openai.strict_schema import strict_problem
from services.runtime.catalog import ModelEntry

__all__ = [
    "InputTool",
    "NamedToolChoice",
    "ToolChoiceInput",
    "ToolOffer",
    "Tools",
    "check_json_schema",
    "check_tools_supported",
    "tool_choice_problem",
]


def check_json_schema(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema, by the validator's own meta-check."""
    try:
        canonical = json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):  # NaN or Infinity (Python's JSON reads them): uncached
        problem = _meta_problem(value)
    else:
        problem = _cached_meta_problem(canonical)
    if problem is not None:
        raise PydanticCustomError(
            "not_json_schema", "not a JSON Schema: {reason}", {"reason": problem}
        )
    return value


@functools.lru_cache(maxsize=256)
def _cached_meta_problem(canonical: str) -> str | None:
    # The 2020-12 meta-check costs about 1 ms a schema (bench: a tool request's
    # gateway CPU), and clients send the same tools with every turn.
    return _meta_problem(json.loads(canonical))


def _meta_problem(value: dict[str, Any]) -> str | None:
    try:
        validator_for(value).check_schema(value)
    except SchemaError as exc:
        return exc.message
    return None


def _check_parameters(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A function's parameters: a JSON Schema of an object, as OpenAI requires."""
    if value is None:
        return value
    if value.get("type") != "object":
        raise PydanticCustomError("parameters_not_object", "a JSON Schema of type object")
    return check_json_schema(value)


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: ToolName
    description: StrictStr | None = Field(default=None, max_length=10_000)
    parameters: Annotated[dict[str, Any] | None, AfterValidator(_check_parameters)] = None
    strict: bool | None = None

    @model_validator(mode="after")
    def _strict_takes_the_parameters(self) -> FunctionDefinition:
        if self.strict and self.parameters is not None:
            problem = strict_problem(self.parameters)
            if problem is not None:
                raise PydanticCustomError(
                    "strict_schema", "strict mode: {reason}", {"reason": problem}
                )
        return self


class InputTool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: FunctionDefinition

    def to_contract(self) -> FunctionTool:
        f = self.function
        return FunctionTool(
            name=f.name, description=f.description, parameters=f.parameters, strict=f.strict
        )


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: ToolName


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: NamedFunction


ToolChoiceInput = Literal["auto", "none", "required"] | NamedToolChoice


def tool_choice_problem(choice: ToolChoiceInput | None, names: set[str]) -> str | None:
    """Why `choice` cannot be honoured with tools of these names, or None when it can."""
    if choice is not None and choice != "none" and not names:
        # As OpenAI answers: a choice among no tools is a mistake.
        return "allowed only with tools"
    if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
        return "names a function not in tools"
    return None


def to_tool_choice(choice: ToolChoiceInput | None) -> ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, NamedToolChoice):
        return ToolChoice(mode="function", name=choice.function.name)
    return ToolChoice(mode=choice)


def _distinct_names(value: list[InputTool]) -> list[InputTool]:
    names = [t.function.name for t in value]
    if len(set(names)) < len(names):
        raise PydanticCustomError("tools_duplicate", "each function name once")
    return value


Tools = Annotated[list[InputTool], Field(max_length=128), AfterValidator(_distinct_names)]


class ToolOffer(BaseModel):
    """The tool fields of a request; whether `tool_choice` fits is each API's own rule."""

    model_config = ConfigDict(extra="ignore")

    tools: Tools | None = None
    tool_choice: ToolChoiceInput | None = None
    parallel_tool_calls: bool | None = None

    @property
    def tool_contracts(self) -> tuple[FunctionTool, ...]:
        return tuple(t.to_contract() for t in self.tools or ())


def check_tools_supported(entry: ModelEntry, tools: tuple[FunctionTool, ...]) -> None:
    """400 unsupported_parameter for tools sent to a model the catalog says takes none."""
    if tools and not entry.tools:
        raise ApiError(
            400, f"The model '{entry.name}' does not take tools.", "unsupported_parameter", "tools"
        )
