"""Conversation records on JetStream KV, updated with compare-and-set.

Keys are `<tenant>.<conversation>`: a tenant's records are one subject filter
away, and another tenant's id is simply not found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

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
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

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
        found: list[Conversation] = []
        watcher = await self._kv.watch(_key(tenant_id, "*"), ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None:  # the end of what is stored now
                    break
                if entry.value:
                    found.append(Conversation.model_validate_json(entry.value))
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return sorted(found, key=lambda c: c.updated_at, reverse=True)

    async def delete(self, tenant_id: str, conversation_id: str) -> bool:
        if await self.get(tenant_id, conversation_id) is None:
            return False
        await self._kv.purge(_key(tenant_id, conversation_id))
        return True
