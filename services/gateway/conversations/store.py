"""Conversation records on JetStream KV, updated with compare-and-set.

Keys are `<tenant>.<conversation>`: a tenant's records are one subject filter
away, and another tenant's id is simply not found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from contracts.subjects import CONVERSATIONS_BUCKET
from services.gateway.conversations.models import Conversation

__all__ = ["ConversationStore", "KvConversationStore", "Unchanged"]

_CAS_ATTEMPTS = 20


class Unchanged(Exception):
    """Raised by an update function to leave the record as it is."""


class ConversationStore(Protocol):
    async def create(self, conversation: Conversation) -> None: ...

    async def get(self, tenant_id: str, conversation_id: str) -> Conversation | None: ...

    async def update(
        self, tenant_id: str, conversation_id: str, change: Callable[[Conversation], Conversation]
    ) -> Conversation | None:
        """Apply `change` atomically; None if there is no such conversation."""
        ...

    async def list(self, tenant_id: str) -> list[Conversation]: ...

    async def delete(self, tenant_id: str, conversation_id: str) -> bool: ...


def _key(tenant_id: str, conversation_id: str) -> str:
    return f"{tenant_id}.{conversation_id}"


class KvConversationStore:
    def __init__(
        self, kv: KeyValue, js: JetStreamContext, bucket: str = CONVERSATIONS_BUCKET
    ) -> None:
        self._kv = kv
        self._js = js
        self._bucket = bucket

    async def create(self, conversation: Conversation) -> None:
        await self._kv.create(
            _key(conversation.tenant_id, conversation.id), conversation.model_dump_json().encode()
        )

    async def _read(self, key: str) -> tuple[Conversation, int] | None:
        """The record and its revision, or None if there is none."""
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return Conversation.model_validate_json(entry.value), entry.revision

    async def get(self, tenant_id: str, conversation_id: str) -> Conversation | None:
        found = await self._read(_key(tenant_id, conversation_id))
        return None if found is None else found[0]

    async def update(
        self, tenant_id: str, conversation_id: str, change: Callable[[Conversation], Conversation]
    ) -> Conversation | None:
        # Two writers (a new user message, the recorder of an answer) may race:
        # retry on a stale revision instead of overwriting the other's change.
        key = _key(tenant_id, conversation_id)
        for _ in range(_CAS_ATTEMPTS):
            found = await self._read(key)
            if found is None:
                return None
            current, revision = found
            try:
                updated = change(current)
            except Unchanged:
                return current
            try:
                await self._kv.update(key, updated.model_dump_json().encode(), last=revision)
            except KeyWrongLastSequenceError:
                continue
            return updated
        raise RuntimeError(f"conversation {conversation_id} kept changing under us")

    async def list(self, tenant_id: str) -> list[Conversation]:
        # Not a KV watch: its snapshot passes over a record updated while it is read (the
        # old revision is no longer the last, the new one comes after the snapshot ends),
        # so a conversation being titled could vanish from the list. The stream's subjects
        # name every key; each record is then read as it is now.
        prefix = f"$KV.{self._bucket}."
        info = await self._js.stream_info(
            f"KV_{self._bucket}", subjects_filter=prefix + _key(tenant_id, "*")
        )
        keys = [subject.removeprefix(prefix) for subject in info.state.subjects or {}]
        read = await asyncio.gather(*(self._read(key) for key in keys))
        found = [record for record, _ in filter(None, read)]
        return sorted(found, key=lambda c: c.updated_at, reverse=True)

    async def delete(self, tenant_id: str, conversation_id: str) -> bool:
        if await self.get(tenant_id, conversation_id) is None:
            return False
        await self._kv.purge(_key(tenant_id, conversation_id))
        return True
