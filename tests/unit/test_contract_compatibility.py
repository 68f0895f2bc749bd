"""Published v1 contracts may only grow: the committed schemas are the promise to other teams.

`docs/schemas/` is what other teams build on. A v1 field may be added (optional),
never removed, renamed, retyped or made required. Regenerate with `make schemas`
after adding a field, and commit the result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.schema import json_schemas

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def published() -> dict[str, dict[str, Any]]:
    return {
        path.name.removesuffix(".schema.json"): json.loads(path.read_text())
        for path in sorted(PUBLISHED.glob("*.schema.json"))
    }


def test_the_committed_schemas_are_up_to_date() -> None:
    assert published() == json_schemas(), "run `make schemas` and commit docs/schemas"


def _type(shape: dict[str, Any]) -> object:
    return shape.get("type", shape.get("anyOf", shape.get("$ref")))


def breaking_changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What in `now` would break a reader written against `before`."""
    problems = []
    for field, shape in before["properties"].items():
        if field not in now["properties"]:
            problems.append(f"{field} removed")
        elif _type(shape) != _type(now["properties"][field]):
            problems.append(f"{field} changed type")
    for field in set(now.get("required", ())) - set(before.get("required", ())):
        problems.append(f"{field} became required")
    return problems


@pytest.mark.parametrize("name", sorted(published()))
def test_a_published_v1_contract_only_ever_gains_optional_fields(name: str) -> None:
    now = json_schemas().get(name)
    assert now is not None, f"{name} was removed"
    assert breaking_changes(published()[name], now) == []


def test_the_guard_catches_removed_retyped_and_newly_required_fields() -> None:
    before = published()["turn.usage.v1"]
    removed = json.loads(json.dumps(before))
    del removed["properties"]["output_tokens"]
    assert breaking_changes(before, removed) == ["output_tokens removed"]

    retyped = json.loads(json.dumps(before))
    retyped["properties"]["output_tokens"]["type"] = "string"
    assert breaking_changes(before, retyped) == ["output_tokens changed type"]

    stricter = json.loads(json.dumps(before))
    stricter["required"] = [*stricter.get("required", []), "estimated"]
    assert breaking_changes(before, stricter) == ["estimated became required"]

    grown = json.loads(json.dumps(before))
    grown["properties"]["reasoning_tokens"] = {"type": "integer", "default": 0}
    assert breaking_changes(before, grown) == []
