"""Listing conversations on a real nats-server while they change under the list.

A KV watch's snapshot used to be the list: a record updated while it was read
(a conversation being titled, or answered) was passed over, and vanished from
`GET /v1/conversations` for that call.
"""

from __future__ import annotations

import asyncio

from contracts import utc_now
from contracts.subjects import CONVERSATIONS_BUCKET
from services.gateway.conversations.models import Conversation
from services.gateway.conversations.store import KvConversationStore
from services.runtime.bus import Bus

IDS = [f"conv{n:03d}" for n in range(200)]


async def test_a_conversation_updated_while_listed_is_still_listed(bus: Bus) -> None:
    store = KvConversationStore(await bus.js.key_value(CONVERSATIONS_BUCKET), bus.js)
    for conversation_id in IDS:
        await store.create(Conversation(id=conversation_id, tenant_id="lister", user_id="u",
                                        model="m"))  # fmt: skip

    async def churn() -> None:
        for _ in range(20):
            await store.update(
                "lister", IDS[5], lambda c: c.model_copy(update={"updated_at": utc_now()})
            )

    short = 0
    for _ in range(30):
        changing = asyncio.create_task(churn())
        listed = {c.id for c in await store.list("lister")}
        await changing
        short += bool(set(IDS) - listed)
    assert short == 0, f"{short} of 30 lists missed a conversation"


async def test_a_deleted_conversation_is_not_listed_and_tenants_stay_apart(bus: Bus) -> None:
    store = KvConversationStore(await bus.js.key_value(CONVERSATIONS_BUCKET), bus.js)
    for tenant in ("ta", "tb"):
        for conversation_id in ("c1", "c2"):
            await store.create(Conversation(id=conversation_id, tenant_id=tenant, user_id="u",
                                            model="m"))  # fmt: skip
    await store.delete("ta", "c1")
    assert [c.id for c in await store.list("ta")] == ["c2"]
    assert sorted(c.id for c in await store.list("tb")) == ["c1", "c2"]
