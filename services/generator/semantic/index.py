"""The in-memory ANN index of the semantic cache: one space per tenant, model and namespace.

A projection of the TOKENBUS_SEMANTIC stream (services/generator/semantic/projection):
entries are added as they are read, tombstones and expiry take them out. Spaces are
separate indexes, so one tenant's question can never reach another's answer, whatever
the vectors. faiss's HNSW (decision 0005's measurements) answers a lookup in well
under a millisecond at 100k entries; it cannot delete, so removed entries are
filtered out of the top candidates and a space is rebuilt once most of it is dead.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime

import faiss
import numpy as np
import numpy.typing as npt

from contracts.semantic import SemanticEntry, SemanticTombstone

__all__ = ["Hit", "SemanticIndex", "SpaceKey", "decode_vector"]

Vector = npt.NDArray[np.float32]
SpaceKey = tuple[str, str, str, str]  # tenant, model, namespace, embedding model

# Candidates read per lookup: enough to step over a few removed or expired ones.
_CANDIDATES = 8
_HNSW_NEIGHBOURS = 16
# faiss's defaults (40, 16) found the stored vector for 45 % of near queries at 100k
# random entries; these find it for most at well under a millisecond (bench.semantic).
_EF_CONSTRUCTION = 80
_EF_SEARCH = 96


def decode_vector(encoded: str) -> Vector:
    vector = np.frombuffer(base64.b64decode(encoded), dtype="<f4").astype(np.float32)
    norm = float(np.linalg.norm(vector))
    # Cosine as inner product: every vector is made unit length (remote models may not be).
    out: Vector = vector / norm if norm > 0 else vector
    return out


@dataclass(frozen=True, slots=True)
class Hit:
    entry: SemanticEntry
    similarity: float


@dataclass
class _Space:
    dimensions: int
    index: faiss.IndexIDMap2 = field(init=False)
    entries: dict[int, SemanticEntry] = field(default_factory=dict)
    dead: int = 0

    def __post_init__(self) -> None:
        self.index = _new_index(self.dimensions)


def _new_index(dimensions: int) -> faiss.IndexIDMap2:
    hnsw = faiss.IndexHNSWFlat(dimensions, _HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = _EF_CONSTRUCTION
    hnsw.hnsw.efSearch = _EF_SEARCH
    # IDMap2 keeps the id -> row map both ways, so a rebuild reads the vectors back.
    return faiss.IndexIDMap2(hnsw)


class SemanticIndex:
    def __init__(self) -> None:
        self._spaces: dict[SpaceKey, _Space] = {}
        self._next_id = 0
        # Where each live entry is, to apply tombstones by conversation or tenant.
        self._by_conversation: dict[tuple[str, str], set[tuple[SpaceKey, int]]] = {}

    def __len__(self) -> int:
        return sum(len(space.entries) for space in self._spaces.values())

    def add(self, entry: SemanticEntry) -> None:
        self.add_many([entry])

    def add_many(self, entries: list[SemanticEntry]) -> None:
        """Add entries; one faiss call per space (a batch builds ~2x faster than one by one,
        which is what a replica rebuilding the stream at start does)."""
        groups: dict[SpaceKey, list[tuple[SemanticEntry, Vector]]] = {}
        for entry in entries:
            key: SpaceKey = (entry.tenant_id, entry.model, entry.namespace, entry.embedding_model)
            groups.setdefault(key, []).append((entry, decode_vector(entry.embedding)))
        for key, group in groups.items():
            size = group[0][1].shape[0]
            group = [(e, v) for e, v in group if v.shape[0] == size]
            space = self._spaces.get(key)
            if space is None or space.dimensions != size:
                space = self._spaces[key] = _Space(size)
            first = self._next_id + 1
            self._next_id += len(group)
            idents = np.arange(first, first + len(group), dtype=np.int64)
            space.index.add_with_ids(np.stack([v for _, v in group]), idents)
            for ident, (entry, _) in zip(idents.tolist(), group, strict=True):
                # The vector lives in the index only: the entry keeps no second copy of it.
                space.entries[ident] = entry.model_copy(update={"embedding": ""})
                self._by_conversation.setdefault(
                    (entry.tenant_id, entry.conversation_id), set()
                ).add((key, ident))

    def apply(self, tombstone: SemanticTombstone) -> int:
        """Remove what the tombstone names; how many entries went."""
        targets = [
            (where, place)
            for where, places in self._by_conversation.items()
            if where[0] == tombstone.tenant_id
            and (tombstone.conversation_id is None or where[1] == tombstone.conversation_id)
            for place in places
        ]
        for _, (key, ident) in targets:
            self._remove(key, ident)
        for where in {where for where, _ in targets}:
            self._by_conversation.pop(where, None)
        return len(targets)

    def _remove(self, key: SpaceKey, ident: int) -> None:
        space = self._spaces.get(key)
        if space is None or ident not in space.entries:
            return
        del space.entries[ident]
        space.dead += 1
        if not space.entries:
            del self._spaces[key]
        elif space.dead > len(space.entries):
            self._rebuild(space)

    @staticmethod
    def _rebuild(space: _Space) -> None:
        idents = np.array(list(space.entries), dtype=np.int64)
        vectors = np.stack([space.index.reconstruct(int(i)) for i in idents])
        space.index = _new_index(space.dimensions)
        space.index.add_with_ids(vectors, idents)
        space.dead = 0

    def lookup(self, key: SpaceKey, vector: Vector, now: datetime) -> Hit | None:
        """The nearest live, unexpired entry of this space (whatever its similarity)."""
        space = self._spaces.get(key)
        if space is None:
            return None
        scores, idents = space.index.search(vector[None, :].astype(np.float32), _CANDIDATES)
        for score, ident in zip(scores[0], idents[0], strict=True):
            entry = space.entries.get(int(ident))
            if entry is None:
                continue
            if entry.expires_at <= now:
                self._remove(key, int(ident))
                continue
            return Hit(entry, float(score))
        return None
