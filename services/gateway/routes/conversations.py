"""The conversations API for product frontends: history on the bus, typed SSE turns."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from contracts import ChatRequest, FunctionTool, new_id, utc_now
from services.gateway.catalog import chat_model, default_chat_model
from services.gateway.conversations.models import Conversation, StoredMessage
from services.gateway.conversations.recorder import AnswerKeeper
from services.gateway.conversations.requests import (
    ConversationChanges,
    NewConversation,
    NewMessage,
)
from services.gateway.conversations.service import (
    TitleWait,
    TurnPlan,
    abandon_turn,
    begin_turn,
    cancel_active_turn,
    check_turn_kept,
    delete_conversation,
    load_conversation,
    resolve_resume_point,
    resume_events,
    stream_events,
)
from services.gateway.conversations.titles import wants_title
from services.gateway.http.auth import Authenticated
from services.gateway.http.body_lifetime import HandlerScopedBodyRoute
from services.gateway.http.cache_control import fresh_if_asked
from services.gateway.http.errors import ApiError
from services.gateway.http.sse import EventStreamResponse, event_stream
from services.gateway.openai.wire import openai_tool_call
from services.gateway.state import GatewayState, State
from services.gateway.turns.idempotency import ClaimedTurn
from services.gateway.turns.launch import Idempotency, Replayed, TurnOrder, launch_turn
from services.gateway.turns.live import TurnEvents, start_turn

router = APIRouter(
    prefix="/v1/conversations", tags=["conversations"], route_class=HandlerScopedBodyRoute
)

RequestId = Annotated[
    str | None, Header(alias="X-Request-ID", max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]


def _summary(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "object": "conversation",
        "title": c.title,
        "title_source": c.title_source,
        "model": c.model,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "active_turn_id": c.active_turn_id,
    }


def _function(tool: FunctionTool) -> dict[str, Any]:
    return tool.model_dump(exclude_none=True)


def _message(m: StoredMessage) -> dict[str, Any]:
    """A stored message; tool calls in the shape the client sent its tools in (OpenAI's)."""
    shown = m.model_dump(mode="json", exclude={"tool_calls"})
    if m.tool_calls:
        shown["tool_calls"] = [openai_tool_call(c) for c in m.tool_calls]
    return shown


def _detail(c: Conversation) -> dict[str, Any]:
    return {
        **_summary(c),
        "system": c.system,
        "tools": [{"type": "function", "function": _function(t)} for t in c.tools],
        "usage": c.usage.model_dump(),
        "messages": [_message(m) for m in c.messages],
    }


@router.post("", status_code=201)
async def create(body: NewConversation, state: State, caller: Authenticated) -> dict[str, Any]:
    entry = (
        chat_model(state.catalog, body.model) if body.model else default_chat_model(state.catalog)
    )
    conversation = Conversation(
        id=new_id("conv"),
        tenant_id=caller.tenant_id,
        user_id=caller.user_id,
        model=entry.name,
        system=body.system,
        tools=tuple(t.to_contract() for t in body.tools or ()),
        title=body.title,
        title_source="user" if body.title else None,
    )
    await state.conversations.create(conversation)
    return _detail(conversation)


@router.get("")
async def list_all(state: State, caller: Authenticated) -> dict[str, Any]:
    mine = [
        c for c in await state.conversations.list(caller.tenant_id) if c.user_id == caller.user_id
    ]
    return {"object": "list", "data": [_summary(c) for c in mine]}


@router.get("/{conversation_id}")
async def get_one(conversation_id: str, state: State, caller: Authenticated) -> dict[str, Any]:
    return _detail(await load_conversation(state.conversations, caller, conversation_id))


@router.patch("/{conversation_id}")
async def rename(
    conversation_id: str, body: ConversationChanges, state: State, caller: Authenticated
) -> dict[str, Any]:
    """Rename (a user's title is final: the titler never replaces it) or change the tools."""
    await load_conversation(state.conversations, caller, conversation_id)

    changes: dict[str, Any] = {"updated_at": utc_now()}
    if body.title is not None:
        changes |= {"title": body.title, "title_source": "user"}
    if body.tools is not None:
        changes["tools"] = tuple(t.to_contract() for t in body.tools)

    def change(current: Conversation) -> Conversation:
        return current.model_copy(update=changes)

    updated = await state.conversations.update(caller.tenant_id, conversation_id, change)
    if updated is None:  # deleted in between
        raise ApiError(404, "No such conversation.", "conversation_not_found", "conversation_id")
    return _detail(updated)


@router.delete("/{conversation_id}", status_code=204)
async def delete(conversation_id: str, state: State, caller: Authenticated) -> Response:
    await delete_conversation(state.conversations, state.bus, caller, conversation_id)
    return Response(status_code=204)


@router.post("/{conversation_id}/messages", response_model=None)
async def send_message(
    conversation_id: str,
    body: NewMessage,
    state: State,
    caller: Authenticated,
    request_id: RequestId = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    cache_control: Annotated[str | None, Header(max_length=256)] = None,
) -> EventStreamResponse:
    settings = state.settings
    _check_lengths(body, settings.max_message_chars)
    conversation = await load_conversation(state.conversations, caller, conversation_id)
    correlation_id, turn_id = request_id or new_id(), new_id()

    async def reserve(undo: AsyncExitStack) -> TurnPlan:
        plan = await begin_turn(
            state.conversations,
            settings,
            state.catalog,
            caller,
            conversation_id,
            body,
            correlation_id,
            turn_id,
        )
        plan = replace(plan, request=fresh_if_asked(plan.request, cache_control))
        # Until the request is on the bus, the message and the reservation can be taken back.
        undo.push_async_callback(
            abandon_turn, state.conversations, caller.tenant_id, conversation_id, turn_id
        )
        return plan

    async def follow(request: ChatRequest) -> TurnEvents:
        return await start_turn(
            state.bus, state.relay, request, settings.heartbeat_s, settings.resume_grace_s
        )

    launched = await launch_turn(
        state,
        TurnOrder(
            caller,
            ClaimedTurn(
                conversation_id=conversation_id,
                turn_id=turn_id,
                model=conversation.model,
                correlation_id=correlation_id,
            ),
            reserve,
            follow,
            None
            if idempotency_key is None
            else Idempotency(
                f"conversations.{conversation_id}.messages",
                idempotency_key,
                body.model_dump_json().encode(),
            ),
        ),
    )
    if isinstance(launched, Replayed):
        return event_stream(
            resume_events(
                state.bus,
                conversation,
                launched.turn.turn_id,
                (0, 0),
                settings.heartbeat_s,
                settings.resume_grace_s,
                _keeper(state),
            )
        )
    plan = launched.prepared
    title = _title_wait(state) if wants_title(plan.conversation, turn_id) else None
    return event_stream(stream_events(launched.handed, _keeper(state), title), launched.headers)


def _check_lengths(body: NewMessage, max_chars: int) -> None:
    texts = [("content", body.content or "")] + [
        (f"tool_results.{n}.content", r.content) for n, r in enumerate(body.tool_results or ())
    ]
    for param, text in texts:
        if len(text) > max_chars:
            raise ApiError(400, f"{param} is over {max_chars} characters.", "invalid_value", param)


def _keeper(state: GatewayState) -> AnswerKeeper:
    return AnswerKeeper(state.bus, state.conversations)


def _title_wait(state: GatewayState) -> TitleWait | None:
    settings = state.settings
    if settings.title_wait_s <= 0:
        return None
    return TitleWait(state.bus, state.conversations, settings.title_wait_s, settings.heartbeat_s)


@router.get("/{conversation_id}/stream", response_model=None)
async def attach(
    conversation_id: str,
    state: State,
    caller: Authenticated,
    # No length bound here: an id this API never sent is 400 invalid_last_event_id, however long.
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id_query: Annotated[str | None, Query(alias="last_event_id")] = None,
) -> EventStreamResponse:
    """Attach to the conversation's current (or last) turn; resume after Last-Event-ID."""
    conversation = await load_conversation(state.conversations, caller, conversation_id)
    turn_id, after = resolve_resume_point(conversation, last_event_id or last_event_id_query)
    await check_turn_kept(state.bus, conversation, turn_id)
    return event_stream(
        resume_events(
            state.bus,
            conversation,
            turn_id,
            after,
            state.settings.heartbeat_s,
            state.settings.resume_grace_s,
            _keeper(state),
            _title_wait(state),
        )
    )


@router.post("/{conversation_id}/cancel")
async def cancel(conversation_id: str, state: State, caller: Authenticated) -> dict[str, Any]:
    turn_id = await cancel_active_turn(state.conversations, state.bus, caller, conversation_id)
    return {"object": "turn.cancel", "conversation_id": conversation_id, "turn_id": turn_id}
