"""POST /v1/chat/completions, as OpenAI serves it."""

from __future__ import annotations

from contextlib import AsyncExitStack

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response

from contracts import ChatRequest, new_id
from services.gateway.http.auth import Authenticated
from services.gateway.http.disconnect import ClientGone, unless_client_leaves
from services.gateway.http.sse import event_stream
from services.gateway.openai.completions import (
    PreparedTurn,
    collect_completion,
    stream_completion,
    to_chat_request,
)
from services.gateway.openai.schema import ChatCompletionRequest
from services.gateway.state import State
from services.gateway.turns.idempotency import ClaimedTurn
from services.gateway.turns.items import TurnFeed, TurnRef
from services.gateway.turns.launch import Idempotency, Replayed, TurnOrder, launch_turn
from services.gateway.turns.live import TurnEvents, start_turn
from services.gateway.turns.replay import ReplayedTurn

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
    settings = state.settings
    correlation_id = x_request_id or new_id()
    prepared = to_chat_request(body, settings, state.catalog, caller, correlation_id)
    # A client that sends a key means to retry: give it time to come back.
    grace_s = settings.resume_grace_s if idempotency_key else 0.0

    async def ready(_: AsyncExitStack) -> PreparedTurn:
        return prepared

    async def follow(request: ChatRequest) -> TurnEvents:
        return await start_turn(state.bus, state.relay, request, settings.heartbeat_s, grace_s)

    launched = await launch_turn(
        state,
        TurnOrder(
            caller,
            ClaimedTurn.of(TurnRef.of(prepared.request)),
            ready,
            follow,
            None
            if idempotency_key is None
            else Idempotency("chat.completions", idempotency_key, body.model_dump_json().encode()),
        ),
    )
    events: TurnFeed
    if isinstance(launched, Replayed):  # the first request's turn: this one runs nothing
        events = ReplayedTurn(state.bus, launched.turn.ref(), settings.heartbeat_s, grace_s)
        headers: dict[str, str] = {}
    else:
        events, headers = launched.handed, launched.headers
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
