"""The semantic cache's index: spaces per tenant, tombstones, expiry (real faiss, no fakes)."""

from __future__ import annotations

import base64
from datetime import timedelta

import numpy as np

from contracts import utc_now
from contracts.semantic import SemanticEntry, SemanticTombstone
from services.generator.semantic.index import SemanticIndex, SpaceKey, decode_vector

RNG = np.random.default_rng(7)


def unit(n: int = 384) -> np.ndarray:
    v = RNG.standard_normal(n).astype(np.float32)
    return v / np.linalg.norm(v)


def entry(
    vector: np.ndarray, tenant: str = "a", conversation: str = "c1", **kw: object
) -> SemanticEntry:
    fields: dict[str, object] = {
        "correlation_id": "x",
        "tenant_id": tenant,
        "model": "m",
        "namespace": "ns",
        "conversation_id": conversation,
        "turn_id": "t",
        "embedding_model": "e",
        "embedding": base64.b64encode(vector.astype("<f4").tobytes()).decode(),
        "answer": f"answer for {tenant}",
        "finish_reason": "stop",
        "provider_model": "p",
        "expires_at": utc_now() + timedelta(minutes=10),
        **kw,
    }
    return SemanticEntry.model_validate(fields)


def key(tenant: str) -> SpaceKey:
    return (tenant, "m", "ns", "e")


def test_finds_the_nearest_entry_with_its_cosine() -> None:
    index = SemanticIndex()
    target = unit()
    index.add(entry(target))
    for _ in range(50):
        index.add(entry(unit(), conversation="other"))
    near = target + 0.05 * unit()
    hit = index.lookup(
        key("a"), decode_vector(base64.b64encode(near.astype("<f4").tobytes()).decode()), utc_now()
    )
    assert hit is not None
    assert hit.entry.conversation_id == "c1"
    expected = float(near @ target / np.linalg.norm(near))
    assert abs(hit.similarity - expected) < 1e-4


def test_one_tenants_entry_never_answers_another() -> None:
    index = SemanticIndex()
    vector = unit()
    index.add(entry(vector, tenant="a"))
    assert index.lookup(key("b"), vector, utc_now()) is None
    hit = index.lookup(key("a"), vector, utc_now())
    assert hit is not None
    assert hit.entry.tenant_id == "a"


def test_a_tombstone_removes_a_conversation_or_a_whole_tenant() -> None:
    index = SemanticIndex()
    first, second, third = unit(), unit(), unit()
    index.add(entry(first, conversation="c1"))
    index.add(entry(second, conversation="c2"))
    index.add(entry(third, tenant="b", conversation="c3"))
    assert (
        index.apply(SemanticTombstone(correlation_id="x", tenant_id="a", conversation_id="c1")) == 1
    )
    hit = index.lookup(key("a"), first, utc_now())
    assert hit is None or hit.entry.conversation_id != "c1"
    assert index.apply(SemanticTombstone(correlation_id="x", tenant_id="a")) == 1
    assert index.lookup(key("a"), second, utc_now()) is None
    assert index.lookup(key("b"), third, utc_now()) is not None  # b is untouched
    assert len(index) == 1


def test_an_expired_entry_is_no_answer() -> None:
    index = SemanticIndex()
    vector = unit()
    index.add(entry(vector, expires_at=utc_now() + timedelta(seconds=1)))
    assert index.lookup(key("a"), vector, utc_now() + timedelta(seconds=2)) is None
    assert len(index) == 0


def test_removing_most_of_a_space_rebuilds_it_and_keeps_the_rest() -> None:
    index = SemanticIndex()
    kept = unit()
    index.add(entry(kept, conversation="keep"))
    for n in range(20):
        index.add(entry(unit(), conversation=f"gone{n}"))
    for n in range(20):
        index.apply(
            SemanticTombstone(correlation_id="x", tenant_id="a", conversation_id=f"gone{n}")
        )
    hit = index.lookup(key("a"), kept, utc_now())
    assert hit is not None
    assert hit.entry.conversation_id == "keep"
    assert hit.similarity > 0.999
