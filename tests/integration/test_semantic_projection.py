"""The semantic cache's index as a projection of TOKENBUS_SEMANTIC, on a real nats-server."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import timedelta

import numpy as np

from contracts import utc_now
from contracts.semantic import SemanticEntry, SemanticTombstone
from contracts.subjects import SEMANTIC_STREAM, semantic_tombstone_subject
from services.generator.semantic.adapters import JetStreamSemanticLog
from services.generator.semantic.index import SemanticIndex, SpaceKey
from services.generator.semantic.projection import SemanticProjection
from services.runtime.bus import Bus
from services.runtime.semantic_tombstones import forget_semantic_entries

RNG = np.random.default_rng(11)


def unit() -> np.ndarray:
    v = RNG.standard_normal(384).astype(np.float32)
    return v / np.linalg.norm(v)


def entry(tenant: str, conversation: str, vector: np.ndarray) -> SemanticEntry:
    return SemanticEntry(
        correlation_id="x", tenant_id=tenant, model="m", namespace="ns",
        conversation_id=conversation, turn_id=conversation, embedding_model="e",
        embedding=base64.b64encode(vector.astype("<f4").tobytes()).decode(),
        answer=f"answer in {conversation}", finish_reason="stop", provider_model="p",
        expires_at=utc_now() + timedelta(minutes=5),
    )  # fmt: skip


async def started(bus: Bus) -> SemanticProjection:
    projection = SemanticProjection(bus, SemanticIndex())
    await projection.start()
    await asyncio.wait_for(projection.ready.wait(), 10)
    return projection


def found(projection: SemanticProjection, tenant: str, vector: np.ndarray) -> str | None:
    key: SpaceKey = (tenant, "m", "ns", "e")
    hit = projection.index.lookup(key, vector, utc_now())
    return hit.entry.conversation_id if hit is not None and hit.similarity > 0.999 else None


async def eventually(check: object, timeout_s: float = 5) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_a_replica_rebuilds_the_index_with_the_tombstones_then_follows_it(bus: Bus) -> None:
    tenant, other = f"t{uuid.uuid4().hex[:8]}", f"o{uuid.uuid4().hex[:8]}"
    log = JetStreamSemanticLog(bus)
    gone, kept, others = unit(), unit(), unit()
    await log.append(entry(tenant, "c1", gone))
    await log.append(entry(tenant, "c2", kept))
    await log.append(entry(other, "c9", others))
    # A tombstone that was never purged: a rebuild must apply it, not index past it.
    tombstone = SemanticTombstone(correlation_id="x", tenant_id=tenant, conversation_id="c1")
    await bus.js.publish(
        semantic_tombstone_subject(tenant), tombstone.model_dump_json().encode(),
        stream=SEMANTIC_STREAM,
    )  # fmt: skip

    projection = await started(bus)
    try:
        assert found(projection, tenant, gone) is None
        assert found(projection, tenant, kept) == "c2"
        assert found(projection, other, others) == "c9"
        assert found(projection, other, kept) is None  # another tenant's space

        live = unit()
        await log.append(entry(tenant, "c3", live))
        await eventually(lambda: found(projection, tenant, live) == "c3")

        await forget_semantic_entries(bus.js, tenant)
        await eventually(lambda: found(projection, tenant, kept) is None)
        assert found(projection, tenant, live) is None
        assert found(projection, other, others) == "c9"
    finally:
        await projection.stop()

    restarted = await started(bus)
    try:
        assert found(restarted, tenant, kept) is None
        assert found(restarted, tenant, live) is None
        assert found(restarted, other, others) == "c9"
    finally:
        await restarted.stop()
