"""Items of a kind a wire format has and tokenbus does not take, decoded to be refused.

Every surface's request has unions tagged by `type`: content parts, blocks, input
items, tools. A kind outside the ones a union takes still decodes, as
`UnknownKind`, so that the refusal can name it and where it is (400
`unsupported_content` or `unsupported_parameter`) instead of the body failing to
parse with pydantic's list of every tag it expected.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictStr

__all__ = ["UnknownKind", "kind_of"]


class UnknownKind(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: StrictStr


def kind_of(value: Any, known: Collection[str], default: str | None = None) -> str:
    """The union tag of `value`: its `type` when the union takes that kind, else "other"."""
    kind = value.get("type", default) if isinstance(value, dict) else getattr(value, "type", None)
    return str(kind) if kind in known else "other"
