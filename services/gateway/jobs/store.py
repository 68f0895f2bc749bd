"""Job records on JetStream KV, updated with compare-and-set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.gateway.jobs.models import JobRecord

__all__ = ["JobStore", "KvJobStore"]

_CAS_ATTEMPTS = 20


class JobStore(Protocol):
    async def create(self, job: JobRecord) -> None: ...

    async def get(self, job_id: str) -> JobRecord | None: ...

    async def update(
        self, job_id: str, change: Callable[[JobRecord], JobRecord]
    ) -> JobRecord | None:
        """Apply `change` atomically; None if there is no such job."""
        ...

    async def delete(self, job_id: str) -> None: ...


class KvJobStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    async def create(self, job: JobRecord) -> None:
        await self._kv.create(job.id, job.model_dump_json().encode())

    async def get(self, job_id: str) -> JobRecord | None:
        return (await self._entry(job_id))[0]

    async def update(
        self, job_id: str, change: Callable[[JobRecord], JobRecord]
    ) -> JobRecord | None:
        # Webhook attempts of competing replicas may race: retry on a stale revision.
        for _ in range(_CAS_ATTEMPTS):
            current, revision = await self._entry(job_id)
            if current is None:
                return None
            updated = change(current)
            try:
                await self._kv.update(job_id, updated.model_dump_json().encode(), last=revision)
            except KeyWrongLastSequenceError:
                continue
            return updated
        raise RuntimeError(f"job {job_id} kept changing under us")

    async def delete(self, job_id: str) -> None:
        await self._kv.purge(job_id)

    async def _entry(self, job_id: str) -> tuple[JobRecord | None, int]:
        try:
            entry = await self._kv.get(job_id)
        except KeyNotFoundError:
            return None, 0
        if entry.value is None or entry.revision is None:
            return None, 0
        return JobRecord.model_validate_json(entry.value), entry.revision
