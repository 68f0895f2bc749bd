"""POST /v1/chat/completions, as OpenAI serves it."""

from __future__ import annotations

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response

from contracts import new_id
from services.gateway.http.auth import Authenticated
from services.gateway.http.body_lifetime import HandlerScopedBodyRoute
from services.gateway.http.cache_control import unless_cached
from services.gateway.http.disconnect import ClientGone, unless_client_leaves
from services.gateway.http.sse import event_stream
from services.gateway.openai.completions import (
    collect_completion,
    stream_completion,
    to_chat_request,
)
from services.gateway.openai.schema import ChatCompletionRequest
from services.gateway.state import State
from services.gateway.turns.launch import launch_live

router = APIRouter(route_class=HandlerScopedBodyRoute)


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest,
    http_request: Request,
    state: State,
    caller: Authenticated,
    x_request_id: str | None = Header(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
    cache_control: str | None = Header(default=None, max_length=256),
) -> Response:
    correlation_id = x_request_id or new_id()
    prepared = unless_cached(
        to_chat_request(body, state.settings, state.catalog, caller, correlation_id),
        cache_control,
    )
    events, headers = await launch_live(
        state,
        caller,
        prepared,
        "chat.completions",
        idempotency_key,
        body,
    )
    if body.stream:
        return event_stream(stream_completion(events, body.wants_usage), headers)
    try:
        return JSONResponse(
            await unless_client_leaves(http_request, collect_completion(events)),
            headers=headers,
        )
    except ClientGone:
        # Nobody reads this; collect_completion's cleanup has cancelled the turn.
        return Response(status_code=499)
