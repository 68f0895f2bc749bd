"""API keys on JetStream KV: issued, looked up by digest, listed and revoked.

Layout of the TOKENBUS_KEYS bucket:
  key.<sha256 of the key>  -> ApiKeyRecord
  id.<key_id>              -> the digest (so a key can be revoked by its public id)
  tenant.<tenant_id>       -> TenantRecord (the tenant's own limits)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from contracts import ApiKeyRecord, Limits, TenantRecord, new_id, utc_now

__all__ = ["KEY_PREFIX", "IssuedKey", "KeyStore", "WatchedKeyStore", "digest", "looks_like_a_key"]

log = logging.getLogger("tokenbus.keys")

KEY_PREFIX = "tb_"
# Issued keys are tb_ + 43 url-safe characters (32 random bytes); an imported dev key
# may be any url-safe string of 24 or more. Anything longer is refused unread.
_KEY_SHAPE = re.compile(r"^[A-Za-z0-9_-]{24,128}$")
_HINT_CHARS = 7


def looks_like_a_key(value: str) -> bool:
    return _KEY_SHAPE.match(value) is not None


def digest(key: str) -> str:
    # Keys are 256-bit random: a fast unsalted hash cannot be brute-forced, and
    # a deterministic one is what lets the gateway find the record in one read.
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: str
    record: ApiKeyRecord


class KeyStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def issue(
        self,
        tenant_id: str,
        user_id: str,
        name: str = "",
        limits: Limits | None = None,
        key: str | None = None,
    ) -> IssuedKey:
        """A new key; `key` imports a chosen one (a fixed dev key), else a random one is made."""
        if key is None:
            key = KEY_PREFIX + secrets.token_urlsafe(32)
        elif not looks_like_a_key(key):
            raise ValueError("a key is 24 to 128 characters: letters, digits, _ and -")
        record = ApiKeyRecord(
            key_id=new_id("key_")[:24],
            tenant_id=tenant_id,
            user_id=user_id,
            name=name,
            hint=key[: len(KEY_PREFIX) + _HINT_CHARS],
            limits=limits or Limits(),
        )
        await self._kv.create(f"key.{digest(key)}", record.model_dump_json().encode())
        await self._kv.put(f"id.{record.key_id}", digest(key).encode())
        return IssuedKey(key=key, record=record)

    async def find(self, key: str) -> ApiKeyRecord | None:
        """The record of a presented key, or None if it is unknown (revoked keys included)."""
        if not looks_like_a_key(key):
            return None
        return await self._record(digest(key))

    async def _record(self, key_digest: str) -> ApiKeyRecord | None:
        try:
            entry = await self._kv.get(f"key.{key_digest}")
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return ApiKeyRecord.model_validate_json(entry.value)

    async def list(self, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        records: list[ApiKeyRecord] = []
        watcher = await self._kv.watch("key.*", ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None:  # the end of what is stored now
                    break
                if entry.value:
                    record = ApiKeyRecord.model_validate_json(entry.value)
                    if tenant_id is None or record.tenant_id == tenant_id:
                        records.append(record)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return sorted(records, key=lambda r: r.created_at)

    async def revoke(self, key_id: str) -> ApiKeyRecord | None:
        """Mark a key revoked (kept for the audit trail); None if there is no such key."""
        try:
            entry = await self._kv.get(f"id.{key_id}")
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        key_digest = entry.value.decode()
        record = await self._record(key_digest)
        if record is None:
            return None
        if record.revoked_at is None:
            record = record.model_copy(update={"revoked_at": utc_now()})
            await self._kv.put(f"key.{key_digest}", record.model_dump_json().encode())
        return record

    async def tenant(self, tenant_id: str) -> TenantRecord:
        try:
            entry = await self._kv.get(f"tenant.{tenant_id}")
        except KeyNotFoundError:
            return TenantRecord(tenant_id=tenant_id)
        if entry.value is None:
            return TenantRecord(tenant_id=tenant_id)
        return TenantRecord.model_validate_json(entry.value)

    async def set_tenant_limits(self, tenant_id: str, limits: Limits) -> TenantRecord:
        record = TenantRecord(tenant_id=tenant_id, limits=limits)
        await self._kv.put(f"tenant.{tenant_id}", record.model_dump_json().encode())
        return record


class WatchedKeyStore(KeyStore):
    """A KeyStore whose lookups are answered from a copy the bucket's watch keeps current.

    Every request looked its key and its tenant up in KV: two bus round trips per
    request. The watch delivers each change within milliseconds (a revocation too);
    a key not in the copy is still read from KV (one made a moment ago), and until
    the copy is complete, or if its watch fails, every lookup reads KV as before.
    """

    def __init__(self, kv: KeyValue) -> None:
        super().__init__(kv)
        self._keys: dict[str, ApiKeyRecord] = {}
        self._tenants: dict[str, TenantRecord] = {}
        self._synced = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _record(self, key_digest: str) -> ApiKeyRecord | None:
        if self._synced and (record := self._keys.get(key_digest)) is not None:
            return record
        return await super()._record(key_digest)

    async def tenant(self, tenant_id: str) -> TenantRecord:
        if self._synced:
            return self._tenants.get(tenant_id) or TenantRecord(tenant_id=tenant_id)
        return await super().tenant(tenant_id)

    async def _watch(self) -> None:
        try:
            watcher = await self._kv.watchall()
            try:
                async for entry in watcher:
                    if entry is None:  # all that is stored now has been seen
                        self._synced = True
                        continue
                    self._apply(entry.key, entry.value)
            finally:
                with contextlib.suppress(Exception):
                    await watcher.stop()  # type: ignore[no-untyped-call]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("key watch stopped", extra={"error_type": type(exc).__name__})
        finally:
            self._synced = False

    def _apply(self, key: str, value: bytes | None) -> None:
        kind, _, name = key.partition(".")
        if kind == "key":
            if value:
                self._keys[name] = ApiKeyRecord.model_validate_json(value)
            else:
                self._keys.pop(name, None)
        elif kind == "tenant":
            if value:
                self._tenants[name] = TenantRecord.model_validate_json(value)
            else:
                self._tenants.pop(name, None)
