"""Image bytes kept beside the bus: the gateway stores them, the generator reads them back.

A bus message is capped (1 MB by default on NATS) and a photo is often larger,
so a request names each image by the sha256 of its bytes and the bytes live in
a JetStream object store (see `services.runtime.topology.images_config`). A
client resends a conversation's images with every turn: an image stored
recently is not written again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from nats.js.api import ObjectMeta
from nats.js.errors import NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from contracts import utc_now

__all__ = ["ImageStore", "ObjectStoreImages"]

# Well inside the bucket's TTL: an image about to expire is written again, fresh.
_REWRITE_AFTER = timedelta(hours=12)


class ImageStore(Protocol):
    async def put(self, name: str, data: bytes) -> None:
        """Keep `data` under `name` (its sha256) for at least as long as a turn may run."""
        ...

    async def get(self, name: str) -> bytes | None:
        """The bytes stored under `name`; None when they are gone (expired, never stored)."""
        ...


class ObjectStoreImages:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    async def put(self, name: str, data: bytes) -> None:
        if await self._stored_recently(name):
            return
        # The write time rides in the description: nats-py does not report an object's age.
        meta = ObjectMeta(name=name, description=utc_now().isoformat())
        await self._store.put(name, data, meta=meta)

    async def get(self, name: str) -> bytes | None:
        try:
            found = await self._store.get(name)
        except (ObjectNotFoundError, NotFoundError):
            return None
        return found.data

    async def _stored_recently(self, name: str) -> bool:
        try:
            info = await self._store.get_info(name)
        except (ObjectNotFoundError, NotFoundError):
            return False
        try:
            written = datetime.fromisoformat(info.description or "")
        except ValueError:
            return False
        return utc_now() - written < _REWRITE_AFTER
