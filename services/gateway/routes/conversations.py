"""The conversations API for product frontends: history on the bus, typed SSE turns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from contracts import new_id
from services.gateway.catalog import chat_model, default_chat_model
from services.gateway.conversations.models import Conversation
from services.gateway.conversations.service import (
    abandon_turn,
    begin_turn,
    cancel_active_turn,
    delete_conversation,
    load_conversation,
    resolve_resume_point,
    resume_events,
    stream_events,
)
from services.gateway.errors import ApiError
from services.gateway.feeds import claim_turn
from services.gateway.idempotency import ClaimedTurn
from services.gateway.service import start_turn
from services.gateway.sse import SSE_HEADERS
from services.gateway.state import State

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])

RequestId = Annotated[
    str | None, Header(alias="X-Request-ID", max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = Field(default=None, max_length=256)
    system: StrictStr | None = Field(default=None, max_length=20_000)
    title: StrictStr | None = Field(default=None, min_length=1, max_length=200)


class NewMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: StrictStr = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)


def _summary(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "object": "conversation",
        "title": c.title,
        "model": c.model,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "active_turn_id": c.active_turn_id,
    }


def _detail(c: Conversation) -> dict[str, Any]:
    return {
        **_summary(c),
        "system": c.system,
        "usage": c.usage.model_dump(),
        "messages": [m.model_dump(mode="json") for m in c.messages],
    }


@router.post("", status_code=201)
async def create(body: NewConversation, state: State) -> dict[str, Any]:
    entry = (
        chat_model(state.catalog, body.model) if body.model else default_chat_model(state.catalog)
    )
    conversation = Conversation(
        id=new_id("conv"), model=entry.name, system=body.system, title=body.title
    )
    await state.conversations.create(conversation)
    return _detail(conversation)


@router.get("")
async def list_all(state: State) -> dict[str, Any]:
    return {"object": "list", "data": [_summary(c) for c in await state.conversations.list()]}


@router.get("/{conversation_id}")
async def get_one(conversation_id: str, state: State) -> dict[str, Any]:
    return _detail(await load_conversation(state.conversations, conversation_id))


@router.delete("/{conversation_id}", status_code=204)
async def delete(conversation_id: str, state: State) -> Response:
    await delete_conversation(state.conversations, state.bus, conversation_id)
    return Response(status_code=204)


@router.post("/{conversation_id}/messages", response_model=None)
async def send_message(
    conversation_id: str,
    body: NewMessage,
    state: State,
    request_id: RequestId = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> StreamingResponse:
    settings = state.settings
    if len(body.content) > settings.max_message_chars:
        raise ApiError(
            400,
            f"The message is over {settings.max_message_chars} characters.",
            "invalid_value",
            "content",
        )
    conversation = await load_conversation(state.conversations, conversation_id)
    correlation_id, turn_id = request_id or new_id(), new_id()
    claim = await claim_turn(
        state,
        f"conversations.{conversation_id}.messages",
        idempotency_key,
        body.model_dump_json().encode(),
        ClaimedTurn(
            conversation_id=conversation_id,
            turn_id=turn_id,
            model=conversation.model,
            correlation_id=correlation_id,
        ),
    )
    if claim is not None and claim.existing is not None:
        return _sse(
            resume_events(
                state.bus,
                conversation,
                claim.existing.turn_id,
                (0, 0),
                settings.heartbeat_s,
                settings.resume_grace_s,
            )
        )
    try:
        state.queue.check()
        plan = await begin_turn(
            state.conversations,
            settings,
            state.catalog,
            conversation_id,
            body.content,
            body.max_tokens,
            body.temperature,
            correlation_id,
            turn_id,
        )
    except ApiError:
        if claim is not None:
            await state.idempotency.release(claim)
        raise
    try:
        events = await start_turn(
            state.bus, state.relay, plan.request, settings.heartbeat_s, settings.resume_grace_s
        )
    except ApiError:
        await abandon_turn(state.conversations, conversation_id, turn_id)
        if claim is not None:
            await state.idempotency.release(claim)
        raise
    return _sse(stream_events(events))


def _sse(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/{conversation_id}/stream", response_model=None)
async def attach(
    conversation_id: str,
    state: State,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=200)] = None,
    last_event_id_query: Annotated[str | None, Query(alias="last_event_id", max_length=200)] = None,
) -> StreamingResponse:
    """Attach to the conversation's current (or last) turn; resume after Last-Event-ID."""
    conversation = await load_conversation(state.conversations, conversation_id)
    turn_id, after = resolve_resume_point(conversation, last_event_id or last_event_id_query)
    return _sse(
        resume_events(
            state.bus,
            conversation,
            turn_id,
            after,
            state.settings.heartbeat_s,
            state.settings.resume_grace_s,
        )
    )


@router.post("/{conversation_id}/cancel")
async def cancel(conversation_id: str, state: State) -> dict[str, Any]:
    turn_id = await cancel_active_turn(state.conversations, state.bus, conversation_id)
    return {"object": "turn.cancel", "conversation_id": conversation_id, "turn_id": turn_id}
