"""Idempotency-Key: a retried POST attaches to the turn the first one started.

The key (hashed, scoped by route) maps to the turn in the TOKENBUS_IDEMPOTENCY
bucket, whose TTL is the idempotency window. The first request claims the key
with a create (atomic on the server); a retry finds the claim and replays that
turn from the stream instead of generating again, so nothing is metered twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict

from services.gateway.http.errors import ApiError
from services.gateway.turns.items import TurnRef

__all__ = ["Claim", "ClaimedTurn", "IdempotencyKeys"]

MAX_KEY_LENGTH = 255


class ClaimedTurn(BaseModel):
    model_config = ConfigDict(frozen=True)

    conversation_id: str
    turn_id: str
    model: str
    correlation_id: str
    body_digest: str = ""

    @classmethod
    def of(cls, turn: TurnRef) -> ClaimedTurn:
        return cls(
            conversation_id=turn.conversation_id,
            turn_id=turn.turn_id,
            model=turn.model,
            correlation_id=turn.correlation_id,
        )

    def ref(self) -> TurnRef:
        return TurnRef(self.conversation_id, self.turn_id, self.model, self.correlation_id)


@dataclass(frozen=True)
class Claim:
    """`existing` is set when an earlier request with the same key started a turn."""

    key: str
    existing: ClaimedTurn | None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class IdempotencyKeys:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    def storage_key(self, route: str, key: str) -> str:
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ApiError(
                400,
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
                "invalid_idempotency_key",
                "Idempotency-Key",
            )
        return _digest(f"{route}\n{key}".encode())

    async def claim(self, route: str, key: str, body: bytes, ref: ClaimedTurn) -> Claim:
        """Claim `key` for `ref`; or return the turn an earlier request claimed it for."""
        storage_key = self.storage_key(route, key)
        ref = ref.model_copy(update={"body_digest": _digest(body)})
        try:
            await self._kv.create(storage_key, ref.model_dump_json().encode())
        except KeyWrongLastSequenceError:
            existing = await self._existing(storage_key)
            if existing is None:  # expired between the two calls: claim it afresh
                return await self.claim(route, key, body, ref)
            if existing.body_digest != ref.body_digest:
                raise ApiError(
                    422,
                    "This Idempotency-Key was used with a different request body.",
                    "idempotency_key_reused",
                    "Idempotency-Key",
                ) from None
            return Claim(storage_key, existing)
        return Claim(storage_key, None)

    async def release(self, claim: Claim) -> None:
        """The request never reached the bus: a retry may start afresh."""
        await self._kv.purge(claim.key)

    async def _existing(self, storage_key: str) -> ClaimedTurn | None:
        try:
            entry = await self._kv.get(storage_key)
        except KeyNotFoundError:
            return None
        return None if entry.value is None else ClaimedTurn.model_validate_json(entry.value)
