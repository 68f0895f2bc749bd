"""Title claims in the TOKENBUS_TITLES KV bucket, by compare-and-set on the entry's revision."""

from __future__ import annotations

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.titler.claims import StoredClaim, TitleClaim

__all__ = ["KvClaimStore"]


class KvClaimStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def read(self, conversation_id: str) -> StoredClaim | None:
        try:
            entry = await self._kv.get(conversation_id)
        except KeyNotFoundError:  # also a deleted or purged key
            return None
        if entry.value is None:
            return None
        return StoredClaim(TitleClaim.model_validate_json(entry.value), entry.revision or 0)

    async def create(self, conversation_id: str, claim: TitleClaim) -> int | None:
        try:
            return await self._kv.create(conversation_id, claim.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            return None

    async def replace(self, conversation_id: str, claim: TitleClaim, revision: int) -> int | None:
        try:
            return await self._kv.update(
                conversation_id, claim.model_dump_json().encode(), last=revision
            )
        except KeyWrongLastSequenceError:
            return None
