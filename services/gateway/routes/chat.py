"""POST /v1/chat/completions, as OpenAI serves it."""

from __future__ import annotations

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from contracts import new_id
from services.gateway.auth import Authenticated
from services.gateway.catalog import chat_model
from services.gateway.completions import collect_completion, stream_completion, to_chat_request
from services.gateway.disconnect import ClientGone, unless_client_leaves
from services.gateway.errors import ApiError
from services.gateway.feeds import open_feed
from services.gateway.openai_schema import ChatCompletionRequest
from services.gateway.replay import ReplayedTurn
from services.gateway.service import store_images
from services.gateway.sse import SSE_HEADERS
from services.gateway.state import State

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest,
    http_request: Request,
    state: State,
    caller: Authenticated,
    x_request_id: str | None = Header(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> Response:
    correlation_id = x_request_id or new_id()
    prepared = to_chat_request(body, state.settings, state.catalog, caller, correlation_id)
    admitted = await state.admission.admit(
        caller, prepared.request, chat_model(state.catalog, body.model)
    )
    try:
        await store_images(state.images, prepared.images)
        events = await open_feed(
            state,
            admitted.request,
            "chat.completions",
            idempotency_key,
            body.model_dump_json().encode(),
            # A client that sends a key means to retry: give it time to come back.
            cancel_grace_s=state.settings.resume_grace_s if idempotency_key else 0.0,
        )
    except ApiError:
        await state.admission.release(admitted)
        raise
    if isinstance(events, ReplayedTurn):  # the first request's turn: this one runs nothing
        await state.admission.release(admitted)
    if body.stream:
        return StreamingResponse(
            stream_completion(events, body.wants_usage),
            media_type="text/event-stream",
            headers={**SSE_HEADERS, **admitted.headers},
        )
    try:
        return JSONResponse(
            await unless_client_leaves(http_request, collect_completion(events)),
            headers=admitted.headers,
        )
    except ClientGone:
        # Nobody reads this; collect_completion's cleanup has cancelled the turn.
        return Response(status_code=499)
