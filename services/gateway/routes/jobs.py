"""POST /v1/jobs runs a completion with no client attached; GET /v1/jobs/{id} tells how it went."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from contracts import ChatRequest, new_id, utc_now
from services.gateway.http.auth import Authenticated
from services.gateway.http.errors import ApiError
from services.gateway.jobs.models import JobRecord, NewJob
from services.gateway.jobs.service import job_status, submit_job
from services.gateway.jobs.status import job_view
from services.gateway.jobs.webhook_policy import WebhookRefused
from services.gateway.openai.completions import to_chat_request
from services.gateway.state import State
from services.gateway.turns.idempotency import ClaimedTurn
from services.gateway.turns.items import TurnRef
from services.gateway.turns.launch import Started, TurnOrder, launch_turn
from services.gateway.turns.request import PreparedTurn

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

    async def ready(_: AsyncExitStack) -> PreparedTurn:
        return prepared

    async def record(request: ChatRequest) -> JobRecord:
        return await submit_job(state.bus, state.jobs, request, webhook_url)

    launched = await launch_turn(
        state, TurnOrder(caller, ClaimedTurn.of(TurnRef.of(prepared.request)), ready, record)
    )
    assert isinstance(launched, Started)  # no Idempotency-Key here, so never a replay
    job = launched.handed
    return JSONResponse(
        job_view(job, [], utc_now()),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.id}", **launched.headers},
    )


@router.get("/{job_id}")
async def read(job_id: str, state: State, caller: Authenticated) -> dict[str, Any]:
    return await job_status(state.bus, state.jobs, caller, job_id)
