"""Accepting a job and telling its status."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

from contracts import ChatRequest, utc_now
from services.gateway.caller import Caller
from services.gateway.http.errors import ApiError, bus_unavailable
from services.gateway.jobs.events import stored_turn_events
from services.gateway.jobs.models import JOBS_ROUTE, JobRecord
from services.gateway.jobs.status import job_view
from services.gateway.jobs.store import JobStore
from services.gateway.turns.live import publish_request
from services.runtime.bus import Bus

__all__ = ["job_status", "submit_job"]

log = logging.getLogger("tokenbus.gateway.jobs")

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def submit_job(
    bus: Bus, store: JobStore, request: ChatRequest, webhook_url: str | None
) -> JobRecord:
    """Record the job, then queue its request; a job is never on the bus without a record."""
    request = request.model_copy(update={"gateway_id": JOBS_ROUTE})
    job = JobRecord.of(request, webhook_url)
    try:
        await store.create(job)
    except Exception as exc:
        log.warning("job record not written", extra={"error_type": type(exc).__name__})
        raise bus_unavailable() from None
    try:
        await publish_request(bus, request)
    except ApiError:
        with contextlib.suppress(Exception):
            await store.delete(job.id)
        raise
    log.info(
        "job accepted",
        extra={"job_id": job.id, "model": job.model, "webhook": webhook_url is not None},
    )
    return job


async def job_status(bus: Bus, store: JobStore, caller: Caller, job_id: str) -> dict[str, Any]:
    """The job's status body; 404 job_not_found if there is no such job of the caller's."""
    job = await _load(store, job_id)
    if (job.tenant_id, job.user_id) != (caller.tenant_id, caller.user_id):
        raise _not_found()
    try:
        events = await stored_turn_events(bus, job.conversation_id, job.turn_id)
    except Exception as exc:
        log.warning("job events not read", extra={"error_type": type(exc).__name__})
        raise bus_unavailable() from None
    return job_view(job, events, utc_now())


async def _load(store: JobStore, job_id: str) -> JobRecord:
    job = None
    if _JOB_ID.match(job_id):
        try:
            job = await store.get(job_id)
        except Exception as exc:
            log.warning("job record not read", extra={"error_type": type(exc).__name__})
            raise bus_unavailable() from None
    if job is None:
        raise _not_found()
    return job


def _not_found() -> ApiError:
    return ApiError(404, "There is no job with this id.", "job_not_found", "job_id")
