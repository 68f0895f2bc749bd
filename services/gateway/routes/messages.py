"""POST /v1/messages (and its count_tokens), as Anthropic serves them.

A wire format over the same turn as Chat Completions: the request is translated
onto one (services.gateway.anthropic.translate), launched on the one path, and
its events rendered as Anthropic's. Errors on these routes come in Anthropic's
shape (services.gateway.http.errors.error_body_for).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from contracts import new_id
from services.gateway.admission.gate import worst_case_prompt_tokens
from services.gateway.anthropic.messages import collect_message, stream_message
from services.gateway.anthropic.schema import MessagesRequest
from services.gateway.anthropic.translate import to_chat_completion
from services.gateway.http.auth import Authenticated
from services.gateway.http.body_lifetime import HandlerScopedBodyRoute
from services.gateway.http.cache_control import unless_cached
from services.gateway.http.disconnect import ClientGone, unless_client_leaves
from services.gateway.http.sse import event_stream
from services.gateway.openai.completions import to_chat_request
from services.gateway.state import State
from services.gateway.turns.launch import launch_live

router = APIRouter(tags=["anthropic"], route_class=HandlerScopedBodyRoute)


@router.post("/v1/messages", response_model=None)
async def create_message(
    body: MessagesRequest,
    http_request: Request,
    state: State,
    caller: Authenticated,
    x_request_id: str | None = Header(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
    # Every version's request shape is the one above; the header is taken, not checked.
    anthropic_version: str | None = Header(default=None, alias="anthropic-version"),
    cache_control: str | None = Header(default=None, max_length=256),
) -> Response:
    chat = to_chat_completion(body)
    prepared = unless_cached(
        to_chat_request(chat, state.settings, state.catalog, caller, x_request_id or new_id()),
        cache_control,
    )
    events, headers = await launch_live(state, caller, prepared, "messages", idempotency_key, body)
    if body.stream:
        return event_stream(stream_message(events), headers)
    try:
        answer = await unless_client_leaves(http_request, collect_message(events))
    except ClientGone:
        # Nobody reads this; collect_message's cleanup has cancelled the turn.
        return Response(status_code=499)
    return JSONResponse(answer, headers=headers)


class CountTokensRequest(MessagesRequest):
    max_tokens: int = Field(default=1, ge=1, description="Not needed to count")


@router.post("/v1/messages/count_tokens")
async def count_tokens(body: CountTokensRequest, state: State, caller: Authenticated) -> Any:
    """The prompt's size as the gateway estimates it for budgets (a deliberate high guess)."""
    prepared = to_chat_request(
        to_chat_completion(body), state.settings, state.catalog, caller, new_id()
    )
    request = prepared.request
    return {"input_tokens": worst_case_prompt_tokens(request.messages, request.tools)}
