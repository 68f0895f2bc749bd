"""POST /v1/jobs runs a completion with no client attached; GET /v1/jobs/{id} tells how it went."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from contracts import new_id, utc_now
from services.gateway.auth import Authenticated
from services.gateway.catalog import chat_model
from services.gateway.completions import to_chat_request
from services.gateway.errors import ApiError
from services.gateway.jobs.models import NewJob
from services.gateway.jobs.service import job_status, submit_job
from services.gateway.jobs.status import job_view
from services.gateway.jobs.webhook_policy import WebhookRefused
from services.gateway.service import store_images
from services.gateway.state import State

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

RequestId = Annotated[
    str | None, Header(alias="X-Request-ID", max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]


@router.post("", status_code=202, response_model=None)
async def create(
    body: NewJob, state: State, caller: Authenticated, x_request_id: RequestId = None
) -> JSONResponse:
    correlation_id = x_request_id or new_id()
    prepared = to_chat_request(body, state.settings, state.catalog, caller, correlation_id)
    webhook_url = None if body.webhook_url is None else str(body.webhook_url)
    if webhook_url is not None:
        try:
            await state.webhooks.check(webhook_url)
        except WebhookRefused as exc:
            raise ApiError(400, exc.reason, "invalid_value", "webhook_url") from None
    state.queue.check()
    admitted = await state.admission.admit(
        caller, prepared.request, chat_model(state.catalog, body.model)
    )
    try:
        await store_images(state.images, prepared.images)
        job = await submit_job(state.bus, state.jobs, admitted.request, webhook_url)
    except ApiError:
        await state.admission.release(admitted)
        raise
    return JSONResponse(
        job_view(job, [], utc_now()),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.id}", **admitted.headers},
    )


@router.get("/{job_id}")
async def read(job_id: str, state: State, caller: Authenticated) -> dict[str, Any]:
    return await job_status(state.bus, state.jobs, caller, job_id)
