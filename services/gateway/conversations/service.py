"""What the conversations API does, apart from HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from contracts import (
    ChatMessage,
    ChatRequest,
    GenerationParams,
    TurnCompleted,
    TurnDelta,
    TurnFailed,
    utc_now,
)
from contracts.subjects import TURNS_STREAM, conversation_filter, turn_filter
from services.gateway.caller import Caller
from services.gateway.catalog import chat_model, check_output_limit, deadline_s
from services.gateway.config import GatewaySettings
from services.gateway.control import announce_attach, request_cancel
from services.gateway.conversations.models import Conversation, StoredMessage
from services.gateway.conversations.recorder import AnswerKeeper
from services.gateway.conversations.sse import (
    InvalidEventId,
    format_item,
    parse_event_id,
    titled,
    turn_started,
)
from services.gateway.conversations.store import ConversationStore
from services.gateway.conversations.titles import keep_title, wait_for_title, wants_title
from services.gateway.errors import ApiError
from services.gateway.replay import replay_turn
from services.gateway.service import TurnEvents
from services.gateway.turns import EventPosition, Heartbeat, TurnItem, TurnTranscript
from services.runtime.bus import Bus
from services.runtime.catalog import Catalog

__all__ = [
    "TitleWait",
    "TurnPlan",
    "abandon_turn",
    "begin_turn",
    "cancel_active_turn",
    "check_turn_kept",
    "delete_conversation",
    "load_conversation",
    "resume_events",
    "stream_events",
]

_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_CHARS_PER_TOKEN = 4  # a deliberately rough estimate; the provider has the final word


@dataclass(frozen=True)
class TurnPlan:
    request: ChatRequest
    conversation: Conversation


def _not_found(conversation_id: str) -> ApiError:
    return ApiError(404, "No such conversation.", "conversation_not_found", "conversation_id")


async def load_conversation(
    store: ConversationStore, caller: Caller, conversation_id: str
) -> Conversation:
    """The caller's own conversation; anyone else's answers exactly like a missing one."""
    if not conversation_id or len(conversation_id) > 64 or set(conversation_id) - _ID_CHARS:
        raise _not_found(conversation_id)
    conversation = await store.get(caller.tenant_id, conversation_id)
    if conversation is None or conversation.user_id != caller.user_id:
        raise _not_found(conversation_id)
    return conversation


def estimate_tokens(text: str) -> int:
    return len(text) // _CHARS_PER_TOKEN + 1


def _fit_context(
    history: tuple[ChatMessage, ...], new: ChatMessage, budget: int
) -> tuple[ChatMessage, ...]:
    """Drop the oldest turns (never the system prompt) until the context fits."""
    system = tuple(m for m in history if m.role == "system")
    rest = [m for m in history if m.role != "system"]
    used = sum(estimate_tokens(m.content) for m in (*system, new))
    while rest and used + sum(estimate_tokens(m.content) for m in rest) > budget:
        rest.pop(0)
    return (*system, *rest, new)


async def begin_turn(
    store: ConversationStore,
    settings: GatewaySettings,
    catalog: Catalog,
    caller: Caller,
    conversation_id: str,
    content: str,
    max_tokens: int | None,
    temperature: float | None,
    correlation_id: str,
    turn_id: str,
) -> TurnPlan:
    """Record the user's message and reserve the conversation for one new turn."""
    conversation = await load_conversation(store, caller, conversation_id)
    entry = chat_model(catalog, conversation.model)
    check_output_limit(entry, max_tokens)
    output_budget = max_tokens or min(entry.max_output_tokens, 1024)
    window = entry.context_window
    if estimate_tokens(content) + output_budget > window:
        raise ApiError(
            400,
            f"The message is about {estimate_tokens(content)} tokens; with {output_budget} "
            f"for the answer it does not fit the model's context of {window} tokens.",
            "context_length_exceeded",
            "content",
        )
    now = utc_now()
    deadline = now + timedelta(seconds=deadline_s(entry, settings))
    user = StoredMessage(role="user", content=content, turn_id=turn_id, created_at=now)

    def reserve(current: Conversation) -> Conversation:
        if current.busy(now):
            raise ApiError(
                409,
                "A turn is still running in this conversation; cancel it or wait for it.",
                "turn_in_progress",
            )
        return current.model_copy(
            update={
                "messages": (*current.messages, user),
                "active_turn_id": turn_id,
                "active_turn_deadline": deadline,
                "updated_at": now,
            }
        )

    updated = await store.update(caller.tenant_id, conversation_id, reserve)
    if updated is None:
        raise _not_found(conversation_id)
    messages = _fit_context(
        conversation.context(),
        ChatMessage(role="user", content=content),
        window - output_budget,
    )
    request = ChatRequest(
        correlation_id=correlation_id,
        occurred_at=now,
        gateway_id=settings.gateway_id,
        conversation_id=conversation_id,
        turn_id=turn_id,
        tenant_id=caller.tenant_id,
        user_id=caller.user_id,
        key_id=caller.key_id,
        model=conversation.model,
        messages=messages,
        params=GenerationParams(max_tokens=max_tokens, temperature=temperature),
        deadline_at=deadline,
    )
    return TurnPlan(request=request, conversation=updated)


async def abandon_turn(
    store: ConversationStore, tenant_id: str, conversation_id: str, turn_id: str
) -> None:
    """The request never reached the bus: take back the user's message and the reservation."""

    def undo(current: Conversation) -> Conversation:
        return current.model_copy(
            update={
                "messages": tuple(m for m in current.messages if m.turn_id != turn_id),
                "active_turn_id": None,
                "active_turn_deadline": None,
            }
        )

    await store.update(tenant_id, conversation_id, undo)


@dataclass(frozen=True)
class TitleWait:
    """Keep a first turn's stream open for the conversation's title."""

    bus: Bus
    store: ConversationStore
    wait_s: float
    heartbeat_s: float

    async def frames(self, conversation_id: str, turn_id: str) -> AsyncIterator[bytes]:
        async for item in wait_for_title(
            self.bus, conversation_id, turn_id, self.wait_s, self.heartbeat_s
        ):
            if isinstance(item, Heartbeat):
                yield format_item(item)
            # Stored before it is shown (the recorder may not have got to it yet), so a
            # client that reads the conversation after seeing its title finds it there.
            elif await keep_title(self.store, item):
                yield titled(item)


def _titles_follow(item: TurnItem, answered: bool) -> bool:
    """Only an answer gets a title; a failed or empty first turn leaves the name open."""
    return answered and isinstance(item, TurnCompleted)


async def stream_events(
    events: TurnEvents, keeper: AnswerKeeper, title: TitleWait | None = None
) -> AsyncIterator[bytes]:
    """Typed SSE for a turn being produced; closing `events` handles a client that left."""
    request = events.request
    transcript = TurnTranscript()
    answered, ended_well = False, False
    try:
        yield turn_started(request.conversation_id, request.turn_id, request.model)
        async for item in events:
            transcript.add(item)
            answered = answered or (isinstance(item, TurnDelta) and bool(item.text))
            ended_well = _titles_follow(item, answered)
            if isinstance(item, TurnCompleted | TurnFailed):
                await keeper.keep(item, transcript, request.gateway_id)
            yield format_item(item)
    finally:
        events.close()
    if title is not None and ended_well:
        async for frame in title.frames(request.conversation_id, request.turn_id):
            yield frame


def resolve_resume_point(
    conversation: Conversation, last_event_id: str | None
) -> tuple[str, EventPosition]:
    """The turn to attach to and the position after which to send events."""
    if last_event_id:
        try:
            turn_id, position = parse_event_id(last_event_id)
        except InvalidEventId:
            raise ApiError(
                400,
                "Last-Event-ID is not an event id of this API (<turn>:<attempt>:<seq>).",
                "invalid_last_event_id",
                "Last-Event-ID",
            ) from None
        if not any(m.turn_id == turn_id for m in conversation.messages):
            raise ApiError(404, "No such turn in this conversation.", "turn_not_found")
        return turn_id, position
    turn_id_or_none = conversation.active_turn_id or conversation.last_turn_id()
    if turn_id_or_none is None:
        raise ApiError(404, "This conversation has no turn yet.", "turn_not_found")
    return turn_id_or_none, (0, 0)


async def check_turn_kept(bus: Bus, conversation: Conversation, turn_id: str) -> None:
    """410 for an ended turn whose events are past the replay window (or were capped away).

    Without this a client attaching to an old conversation would get heartbeats for
    an hour, waiting for events that will never come. A running turn always passes:
    its events are on their way.
    """
    if turn_id == conversation.active_turn_id:
        return
    kept = await bus.js.stream_info(
        TURNS_STREAM, subjects_filter=turn_filter(conversation.id, turn_id)
    )
    if not kept.state.subjects:
        raise ApiError(
            410,
            "This turn is past the replay window; its message is in the conversation.",
            "turn_expired",
        )


async def resume_events(
    bus: Bus,
    conversation: Conversation,
    turn_id: str,
    after: EventPosition,
    heartbeat_s: float,
    grace_s: float,
    keeper: AnswerKeeper,
    title: TitleWait | None = None,
) -> AsyncIterator[bytes]:
    """Replay from the stream what came after `after`, then follow the turn live."""
    announce_attach(bus, conversation.id, turn_id)
    # From the start, this reader sees the whole turn; from a resume point it does not.
    transcript = TurnTranscript() if after == (0, 0) else None
    ended, answered, ended_well = False, False, False
    try:
        yield turn_started(conversation.id, turn_id, conversation.model)
        async for item in replay_turn(bus, conversation.id, turn_id, after, heartbeat_s):
            if transcript is not None:
                transcript.add(item)
            ended = ended or isinstance(item, TurnCompleted | TurnFailed)
            answered = answered or (isinstance(item, TurnDelta) and bool(item.text))
            ended_well = _titles_follow(item, answered or after != (0, 0))
            if isinstance(item, TurnCompleted | TurnFailed):
                await keeper.keep(item, transcript)
            yield format_item(item)
    finally:
        if not ended:
            request_cancel(bus, conversation.id, turn_id, grace_s)
    if title is not None and ended_well and wants_title(conversation, turn_id):
        async for frame in title.frames(conversation.id, turn_id):
            yield frame


async def cancel_active_turn(
    store: ConversationStore, bus: Bus, caller: Caller, conversation_id: str
) -> str:
    conversation = await load_conversation(store, caller, conversation_id)
    if not conversation.busy(utc_now()) or conversation.active_turn_id is None:
        raise ApiError(409, "No turn is running in this conversation.", "no_turn_in_progress")
    request_cancel(bus, conversation_id, conversation.active_turn_id)
    return conversation.active_turn_id


async def delete_conversation(
    store: ConversationStore, bus: Bus, caller: Caller, conversation_id: str
) -> None:
    conversation = await load_conversation(store, caller, conversation_id)
    if conversation.busy(utc_now()) and conversation.active_turn_id:
        request_cancel(bus, conversation_id, conversation.active_turn_id)
    # Its events go too: the stream must not keep what the user deleted.
    await bus.js.purge_stream(TURNS_STREAM, subject=conversation_filter(conversation_id))
    await store.delete(caller.tenant_id, conversation_id)
