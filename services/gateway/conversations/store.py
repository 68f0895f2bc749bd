"""Conversation records on JetStream KV, updated with compare-and-set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from services.gateway.conversations.models import Conversation

__all__ = ["ConversationStore", "KvConversationStore", "Unchanged"]

_CAS_ATTEMPTS = 20


class Unchanged(Exception):
    """Raised by an update function to leave the record as it is."""


class ConversationStore(Protocol):
    async def create(self, conversation: Conversation) -> None: ...

    async def get(self, conversation_id: str) -> Conversation | None: ...

    async def update(
        self, conversation_id: str, change: Callable[[Conversation], Conversation]
    ) -> Conversation | None:
        """Apply `change` atomically; None if there is no such conversation."""
        ...

    async def list(self) -> list[Conversation]: ...

    async def delete(self, conversation_id: str) -> bool: ...


class KvConversationStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def create(self, conversation: Conversation) -> None:
        await self._kv.create(conversation.id, conversation.model_dump_json().encode())

    async def _read(self, conversation_id: str) -> tuple[Conversation, int] | None:
        """The record and its revision, or None if there is none."""
        try:
            entry = await self._kv.get(conversation_id)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return Conversation.model_validate_json(entry.value), entry.revision

    async def get(self, conversation_id: str) -> Conversation | None:
        found = await self._read(conversation_id)
        return None if found is None else found[0]

    async def update(
        self, conversation_id: str, change: Callable[[Conversation], Conversation]
    ) -> Conversation | None:
        # Two writers (a new user message, the recorder of an answer) may race:
        # retry on a stale revision instead of overwriting the other's change.
        for _ in range(_CAS_ATTEMPTS):
            found = await self._read(conversation_id)
            if found is None:
                return None
            current, revision = found
            try:
                updated = change(current)
            except Unchanged:
                return current
            try:
                await self._kv.update(
                    conversation_id, updated.model_dump_json().encode(), last=revision
                )
            except KeyWrongLastSequenceError:
                continue
            return updated
        raise RuntimeError(f"conversation {conversation_id} kept changing under us")

    async def list(self) -> list[Conversation]:
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        found = [c for key in keys if (c := await self.get(key)) is not None]
        return sorted(found, key=lambda c: c.updated_at, reverse=True)

    async def delete(self, conversation_id: str) -> bool:
        if await self.get(conversation_id) is None:
            return False
        await self._kv.purge(conversation_id)
        return True
