"""JSON Schema export of every v1 contract: `python -m contracts.schema DIR`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from contracts.chat import ChatRequest
from contracts.deadletter import DeadLetter
from contracts.embeddings import EmbeddingReply, EmbeddingRequest
from contracts.events import TurnCompleted, TurnDelta, TurnFailed, TurnUsage
from contracts.semantic import SemanticEntry, SemanticTombstone
from contracts.titles import ConversationTitled, TitleRequest

__all__ = ["CONTRACTS", "json_schemas", "write_schemas"]

CONTRACTS: tuple[type[BaseModel], ...] = (
    ChatRequest,
    TurnDelta,
    TurnUsage,
    TurnCompleted,
    TurnFailed,
    TitleRequest,
    ConversationTitled,
    DeadLetter,
    EmbeddingRequest,
    EmbeddingReply,
    SemanticEntry,
    SemanticTombstone,
)


def json_schemas() -> dict[str, dict[str, Any]]:
    """Schema per contract, keyed by the message's `type` discriminator."""
    out: dict[str, dict[str, Any]] = {}
    for model in CONTRACTS:
        kind = model.model_fields["type"].default
        out[f"{kind}.v1"] = model.model_json_schema(mode="serialization")
    return out


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(path)
