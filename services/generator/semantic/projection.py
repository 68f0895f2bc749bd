"""The index as a projection of TOKENBUS_SEMANTIC: read from the start at boot, then live."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy
from pydantic import ValidationError

from contracts import utc_now
from contracts.semantic import SemanticEntry, SemanticTombstone
from contracts.subjects import SEMANTIC_STREAM, SEMANTIC_SUBJECTS, semantic_tombstone_subject
from services.generator.semantic.index import SemanticIndex
from services.generator.semantic.metrics import SEMANTIC_ENTRIES
from services.runtime.bus import Bus

__all__ = ["SemanticProjection"]

log = logging.getLogger("tokenbus.generator.semantic")

_BACKLOG_BATCH = 5000
_TOMBSTONES = semantic_tombstone_subject("")


class SemanticProjection:
    def __init__(self, bus: Bus, index: SemanticIndex) -> None:
        self._bus = bus
        self.index = index
        self.ready = asyncio.Event()
        self._sub: Subscription | None = None
        # While catching up, entries are indexed in batches (see SemanticIndex.add_many).
        self._backlog: list[SemanticEntry] = []

    async def start(self) -> None:
        """Subscribe from the stream's first message; `ready` is set once caught up."""
        info = await self._bus.js.stream_info(SEMANTIC_STREAM)
        if info.state.messages == 0:
            self.ready.set()
        # Ordered: one reader, in stream order, recreated by the client after a gap.
        self._sub = await self._bus.js.subscribe(
            SEMANTIC_SUBJECTS,
            stream=SEMANTIC_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=self._on_message,
        )

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _on_message(self, msg: Msg) -> None:
        self._apply(msg.subject, msg.data)
        if len(self._backlog) >= _BACKLOG_BATCH:
            self._flush()
        if msg.metadata.num_pending == 0 and not self.ready.is_set():
            self._flush()
            log.info("semantic cache index built", extra={"entries": len(self.index)})
            self.ready.set()

    def _flush(self) -> None:
        if self._backlog:
            self.index.add_many(self._backlog)
            self._backlog = []

    def _apply(self, subject: str, data: bytes) -> None:
        try:
            if subject.startswith(_TOMBSTONES):
                self._flush()  # what it removes may still be waiting to be indexed
                removed = self.index.apply(SemanticTombstone.model_validate_json(data))
                log.info("semantic cache tombstone applied", extra={"removed": removed})
            else:
                entry = SemanticEntry.model_validate_json(data)
                if entry.expires_at <= utc_now():
                    return  # expired before this replica read it
                if self.ready.is_set():
                    self.index.add(entry)
                else:
                    self._backlog.append(entry)
        except (ValidationError, ValueError) as exc:
            # One bad message must not stop the projection: the others still count.
            log.warning("semantic cache message skipped", extra={"error_type": type(exc).__name__})
        SEMANTIC_ENTRIES.set(len(self.index))
