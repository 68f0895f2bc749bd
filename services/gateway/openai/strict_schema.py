"""The subset of JSON Schema that strict mode takes, checked before anything is sent.

`strict: true` (on a `json_schema` response format or on a function tool) asks the
provider to constrain decoding to the schema, and OpenAI's strict mode refuses a
schema outside its subset with a 400 that arrives only once the turn is under
way. tokenbus checks the same rules at the edge, for every provider, so a
request behaves alike wherever it goes and the client learns which part is wrong:
every object closes `additionalProperties` and lists each property in
`required` (an optional field is a nullable one), the root is an object, and
the keywords strict decoding cannot enforce are absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["strict_problem"]

# Documented by OpenAI as not supported in strict mode.
_UNSUPPORTED = (
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "propertyNames",
    "minProperties",
    "maxProperties",
)
_MAX_DEPTH = 10
# Keywords whose value is one schema, or a list or a map of them.
_ONE = ("items", "additionalProperties", "contains")
_LIST = ("anyOf", "oneOf", "prefixItems")
_MAP = ("properties", "$defs", "definitions")


def strict_problem(schema: dict[str, Any]) -> str | None:
    """Why strict mode cannot take `schema` (naming the part), or None when it can."""
    if schema.get("type") != "object":
        return 'the root must be "type": "object"'
    for path, node, depth in _nodes(schema, "", 0):
        where = path or "the root"
        if depth > _MAX_DEPTH:
            return f"{where}: nested deeper than {_MAX_DEPTH} levels"
        found = next((k for k in _UNSUPPORTED if k in node), None)
        if found is not None:
            return f"{where}: '{found}' is not supported in strict mode"
        if _is_object(node):
            if node.get("additionalProperties") is not False:
                return f'{where}: an object needs "additionalProperties": false'
            missing = sorted(set(node.get("properties", {})) - set(node.get("required", ())))
            if missing:
                return (
                    f"{where}: every property must be required (make '{missing[0]}' "
                    "nullable instead of optional)"
                )
    return None


def _is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node


def _nodes(node: Any, path: str, depth: int) -> Iterator[tuple[str, dict[str, Any], int]]:
    if not isinstance(node, dict):
        return
    yield path, node, depth
    for key in _ONE:
        yield from _nodes(node.get(key), _join(path, key), depth + 1)
    for key in _LIST:
        children = node.get(key)
        if isinstance(children, list):
            for n, child in enumerate(children):
                yield from _nodes(child, _join(path, f"{key}.{n}"), depth + 1)
    for key in _MAP:
        children = node.get(key)
        if isinstance(children, dict):
            # $defs are not a level of the answer: only properties nest it deeper.
            deeper = depth + 1 if key == "properties" else depth
            for name, child in children.items():
                yield from _nodes(child, _join(path, f"{key}.{name}"), deeper)


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part
