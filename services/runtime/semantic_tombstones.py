"""Taking answers out of the semantic cache: a conversation's, or all of a tenant's."""

from __future__ import annotations

from nats.js import JetStreamContext

from contracts import new_id
from contracts.semantic import SemanticTombstone
from contracts.subjects import (
    SEMANTIC_STREAM,
    semantic_entry_filter,
    semantic_tombstone_subject,
)

__all__ = ["forget_semantic_entries"]


async def forget_semantic_entries(
    js: JetStreamContext, tenant_id: str, conversation_id: str | None = None
) -> None:
    """The tombstone makes every live replica drop the entries from its index; the purge
    keeps a replica that rebuilds later from ever reading them."""
    tombstone = SemanticTombstone(
        correlation_id=new_id(), tenant_id=tenant_id, conversation_id=conversation_id
    )
    await js.publish(
        semantic_tombstone_subject(tenant_id),
        tombstone.model_dump_json().encode(),
        stream=SEMANTIC_STREAM,
        headers={"Nats-Msg-Id": tombstone.event_id},
    )
    await js.purge_stream(
        SEMANTIC_STREAM, subject=semantic_entry_filter(tenant_id, conversation_id or "*")
    )
