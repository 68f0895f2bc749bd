"""The committed AsyncAPI document is current, complete and points at real schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.asyncapi import asyncapi_document
from contracts.schema import CONTRACTS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DOCS / "asyncapi.json").read_text())
    return document


def test_the_committed_document_is_up_to_date() -> None:
    assert committed() == asyncapi_document(), "run `make schemas` and commit docs/asyncapi.json"


def test_it_is_an_asyncapi_3_document_whose_references_resolve() -> None:
    document = committed()
    assert document["asyncapi"] == "3.0.0"
    assert {"title", "version"} <= set(document["info"])
    messages = document["components"]["messages"]
    for channel in document["channels"].values():
        for name, message in channel["messages"].items():
            assert message["$ref"] == f"#/components/messages/{name}"
            assert name in messages
        # Every {parameter} in an address is declared, and nothing else is.
        address = channel["address"]
        used = {part[1:-1] for part in address.split(".") if part.startswith("{")}
        assert used == set(channel.get("parameters", {})), address
    for operation in document["operations"].values():
        assert operation["action"] in {"send", "receive"}
        assert operation["channel"]["$ref"].removeprefix("#/channels/") in document["channels"]
    for message in messages.values():
        ref = message["payload"].get("$ref")
        if ref is not None:
            assert (DOCS / ref).is_file(), ref


def test_every_contract_is_on_a_channel() -> None:
    refs = {m["payload"].get("$ref") for m in committed()["components"]["messages"].values()}
    for model in CONTRACTS:
        kind = model.model_fields["type"].default
        assert f"schemas/{kind}.v1.schema.json" in refs, kind
