"""The Responses API's routes, as OpenAI serves them: create, retrieve (or stream again),
cancel and delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response

from contracts import new_id
from services.gateway.conversations.recorder import AnswerKeeper
from services.gateway.http.auth import Authenticated
from services.gateway.http.body_lifetime import HandlerScopedBodyRoute
from services.gateway.http.disconnect import ClientGone, unless_client_leaves
from services.gateway.http.errors import ApiError
from services.gateway.http.sse import event_stream
from services.gateway.responses.lifecycle import cancel_response, delete_response, stream_again
from services.gateway.responses.relay import collect_response, stream_response
from services.gateway.responses.schema import ResponseRequest
from services.gateway.responses.service import launch_response, plan_response
from services.gateway.responses.stored import read_response
from services.gateway.state import State

router = APIRouter(tags=["responses"], route_class=HandlerScopedBodyRoute)


@router.post("/v1/responses", response_model=None)
async def create_response(
    body: ResponseRequest,
    http_request: Request,
    state: State,
    caller: Authenticated,
    x_request_id: str | None = Header(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
    cache_control: str | None = Header(default=None, max_length=256),
) -> Response:
    plan = await plan_response(state, caller, body, x_request_id or new_id(), cache_control)
    launched = await launch_response(state, caller, body, plan, idempotency_key)
    head, events, headers = launched.head, launched.events, launched.headers
    keeper = AnswerKeeper(state.bus, state.conversations) if plan.stored else None
    if body.stream:
        return event_stream(stream_response(head, events, keeper), headers)
    if body.background:
        # The recorder keeps its answer; the client polls GET /v1/responses/{id}.
        events.close()
        if launched.replayed:
            return JSONResponse(await read_response(state.conversations, caller, head.response_id))
        return JSONResponse(head.body("queued", []), headers=headers)
    try:
        return JSONResponse(
            await unless_client_leaves(http_request, collect_response(head, events, keeper)),
            headers=headers,
        )
    except ClientGone:
        # Nobody reads this; collect_response's cleanup has cancelled the turn.
        return Response(status_code=499)


@router.get("/v1/responses/{response_id}", response_model=None)
async def get_response(
    response_id: str,
    http_request: Request,
    state: State,
    caller: Authenticated,
    stream: bool = False,
    starting_after: Annotated[int | None, Query(ge=-1)] = None,
) -> Response:
    # The SDK sends a list as include[]=...; include_obfuscation asks for padding, which
    # tokenbus never adds, so it changes nothing.
    if any(name in http_request.query_params for name in ("include", "include[]")):
        raise ApiError(
            400, "include: extra output (include) is not supported.", "unsupported_parameter",
            "include",
        )  # fmt: skip
    if not stream:
        if starting_after is not None:
            raise ApiError(
                400, "starting_after: only with stream=true.", "invalid_value", "starting_after"
            )
        return JSONResponse(await read_response(state.conversations, caller, response_id))
    after = -1 if starting_after is None else starting_after
    return event_stream(await stream_again(state, caller, response_id, after))


@router.post("/v1/responses/{response_id}/cancel")
async def cancel(response_id: str, state: State, caller: Authenticated) -> dict[str, Any]:
    return await cancel_response(state, caller, response_id)


@router.delete("/v1/responses/{response_id}")
async def delete(response_id: str, state: State, caller: Authenticated) -> dict[str, Any]:
    return await delete_response(state, caller, response_id)
