"""The AsyncAPI 3 document of the bus, generated from the contracts: `python -m contracts.asyncapi`.

Payloads point at the JSON Schemas in docs/schemas (written by contracts.schema),
so the two can never disagree; `make schemas` writes both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from contracts.schema import CONTRACTS
from contracts.subjects import (
    CHAT_REQUEST_SUBJECT,
    DEADLETTER_STREAM,
    EMBEDDING_QUEUE,
    EMBEDDING_REQUEST_SUBJECT,
    PREFIX,
    REQUESTS_STREAM,
    SEMANTIC_STREAM,
    TITLE_REQUEST_SUBJECT,
    TURNS_STREAM,
    USAGE_STREAM,
)

__all__ = ["asyncapi_document", "write_asyncapi"]

_VERSION = "1.0.0"


def _message(kind: str, summary: str) -> dict[str, Any]:
    return {
        "name": kind,
        "title": kind,
        "summary": summary,
        "contentType": "application/json",
        "payload": {"$ref": f"schemas/{kind}.v1.schema.json"},
    }


_MESSAGES: dict[str, tuple[str, str]] = {
    "chatRequest": ("chat.request", "One assistant turn asked for; one generator takes it."),
    "titleRequest": ("title.request", "Name this conversation; one titler takes it."),
    "turnDelta": ("turn.delta", "A piece of the answer, in order."),
    "turnUsage": ("turn.usage", "Exact tokens (and key, tenant, purpose) of one turn."),
    "turnCompleted": ("turn.completed", "The last event of a finished or cancelled turn."),
    "turnFailed": ("turn.failed", "The last event of a turn that could not be served."),
    "conversationTitled": ("conversation.titled", "The conversation's one title."),
    "deadLetter": ("dead_letter", "A message a consumer refused for good, with the reason."),
    "embeddingRequest": ("embedding.request", "Embed these texts; one embedder replica answers."),
    "embeddingReply": ("embedding.reply", "The vectors (base64 float32), or the failure."),
    "semanticEntry": ("semantic.entry", "One answered question in the semantic cache."),
    "semanticTombstone": ("semantic.tombstone", "A conversation's or tenant's entries go."),
}


def _parameters(*names: str) -> dict[str, Any]:
    return {name: {"description": f"one subject token: {name}"} for name in names}


def asyncapi_document() -> dict[str, Any]:
    documented = {kind for kind, _ in _MESSAGES.values()}
    exported = {model.model_fields["type"].default for model in CONTRACTS}
    if documented != exported:  # a new contract must be placed on a channel
        raise RuntimeError(f"contracts without a channel: {sorted(exported - documented)}")
    channels: dict[str, Any] = {
        "chatRequests": {
            "address": CHAT_REQUEST_SUBJECT,
            "description": f"Work queue (stream {REQUESTS_STREAM}, durable `generator`).",
            "messages": {"chatRequest": {"$ref": "#/components/messages/chatRequest"}},
        },
        "titleRequests": {
            "address": TITLE_REQUEST_SUBJECT,
            "description": f"Work queue (stream {REQUESTS_STREAM}, durable `titler`).",
            "messages": {"titleRequest": {"$ref": "#/components/messages/titleRequest"}},
        },
        "turnEvents": {
            "address": f"{PREFIX}.turn.{{gateway}}.{{conversation}}.{{turn}}.{{kind}}",
            "description": (
                f"Every event of every turn (stream {TURNS_STREAM}, 24 h). `kind` is delta, "
                "usage, completed, failed or title. Order by (attempt, seq); dedupe on event_id."
            ),
            "parameters": _parameters("gateway", "conversation", "turn", "kind"),
            "messages": {
                name: {"$ref": f"#/components/messages/{name}"}
                for name in (
                    "turnDelta",
                    "turnUsage",
                    "turnCompleted",
                    "turnFailed",
                    "conversationTitled",
                )
            },
        },
        "embeddingRequests": {
            "address": EMBEDDING_REQUEST_SUBJECT,
            "description": (
                f"Core NATS request/reply (not stored), queue group `{EMBEDDING_QUEUE}`; "
                "the reply is an embedding.reply. Usage is a turn.usage with purpose embedding."
            ),
            "messages": {
                "embeddingRequest": {"$ref": "#/components/messages/embeddingRequest"},
                "embeddingReply": {"$ref": "#/components/messages/embeddingReply"},
            },
        },
        "semanticEntries": {
            "address": f"{PREFIX}.semantic.entry.{{tenant}}.{{conversation}}",
            "description": (
                f"Semantic cache entries (stream {SEMANTIC_STREAM}, 24 h); every generator "
                "replica builds its in-memory index from the stream and follows it."
            ),
            "parameters": _parameters("tenant", "conversation"),
            "messages": {"semanticEntry": {"$ref": "#/components/messages/semanticEntry"}},
        },
        "semanticTombstones": {
            "address": f"{PREFIX}.semantic.tombstone.{{tenant}}",
            "description": f"Removals from the semantic cache (stream {SEMANTIC_STREAM}).",
            "parameters": _parameters("tenant"),
            "messages": {"semanticTombstone": {"$ref": "#/components/messages/semanticTombstone"}},
        },
        "deadLetters": {
            "address": f"{PREFIX}.deadletter.{{consumer}}",
            "description": f"Refused messages (stream {DEADLETTER_STREAM}, 14 days).",
            "parameters": _parameters("consumer"),
            "messages": {"deadLetter": {"$ref": "#/components/messages/deadLetter"}},
        },
        "usageCounters": {
            "address": (
                f"{PREFIX}.usage.{{tenant}}.{{day}}.{{user}}.{{key}}.{{model}}.{{purpose}}"
                ".{measure}"
            ),
            "description": (
                f"Running totals on JetStream counters (stream {USAGE_STREAM}); read the last "
                'message of a subject: `{"val": "<n>"}`.'
            ),
            "parameters": _parameters(
                "tenant", "day", "user", "key", "model", "purpose", "measure"
            ),
            "messages": {"counter": {"$ref": "#/components/messages/counter"}},
        },
    }
    operations = {
        f"publish{name[0].upper()}{name[1:]}": {
            "action": "send",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": f"tokenbus publishes on {channel['address']}",
        }
        for name, channel in channels.items()
    }
    messages = {name: _message(kind, summary) for name, (kind, summary) in _MESSAGES.items()}
    messages["counter"] = {
        "name": "counter",
        "contentType": "application/json",
        "payload": {
            "type": "object",
            "required": ["val"],
            "properties": {"val": {"type": "string", "pattern": "^-?[0-9]+$"}},
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "tokenbus events",
            "version": _VERSION,
            "description": (
                "What tokenbus puts on NATS JetStream, for teams that consume it. "
                "Contracts are v1: they grow by optional fields only. See docs/events.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "`tokenbus up`",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def write_asyncapi(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asyncapi_document(), indent=2) + "\n")
    return path


if __name__ == "__main__":
    print(write_asyncapi(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/asyncapi.json")))
