"""What the conversations API does, apart from HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from contracts import (
    ChatMessage,
    ChatRequest,
    FunctionTool,
    GenerationParams,
    ToolCall,
    TurnCompleted,
    TurnDelta,
    TurnFailed,
    utc_now,
)
from contracts.subjects import TURNS_STREAM, conversation_filter
from services.gateway.admission.prompt_size import CHARS_PER_TOKEN, message_tokens, tools_bytes
from services.gateway.caller import Caller
from services.gateway.catalog import chat_model, check_output_limit
from services.gateway.config import GatewaySettings
from services.gateway.conversations.models import Conversation, StoredMessage
from services.gateway.conversations.recorder import AnswerKeeper
from services.gateway.conversations.requests import NewMessage
from services.gateway.conversations.sse import (
    InvalidEventId,
    format_item,
    parse_event_id,
    titled,
    tool_call,
    turn_started,
)
from services.gateway.conversations.store import ConversationStore
from services.gateway.conversations.titles import keep_title, wait_for_title, wants_title
from services.gateway.http.errors import ApiError
from services.gateway.openai.request_fields import check_fields
from services.gateway.openai.tools import check_tools_supported, to_tool_choice, tool_choice_problem
from services.gateway.turns.control import announce_attach, request_cancel
from services.gateway.turns.items import EventPosition, Heartbeat, Reset, TurnItem, TurnTranscript
from services.gateway.turns.live import TurnEvents
from services.gateway.turns.replay import replay_turn, turn_events_kept
from services.gateway.turns.request import TurnSpec, chat_request, turn_deadline
from services.runtime.bus import Bus
from services.runtime.catalog import Catalog, ModelEntry
from services.runtime.semantic_tombstones import forget_semantic_entries

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


@dataclass(frozen=True)
class TurnPlan:
    request: ChatRequest
    conversation: Conversation
    images: dict[str, bytes] = field(default_factory=dict)
    """The conversations API takes text only: no image bytes to store."""


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


def _exchanges(messages: list[ChatMessage]) -> list[list[ChatMessage]]:
    """Messages grouped so a tool call is never kept without its results, nor they without it."""
    groups: list[list[ChatMessage]] = []
    for m in messages:
        if m.role == "tool" and groups:
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


def _fit_context(
    history: tuple[ChatMessage, ...], kept_tail: int, budget: int
) -> tuple[ChatMessage, ...]:
    """Drop the oldest exchanges (never the system prompt, nor the last `kept_tail`) to fit."""
    system = [m for m in history if m.role == "system"]
    rest = [m for m in history if m.role != "system"]
    tail = rest[len(rest) - kept_tail :]
    groups = _exchanges(rest[: len(rest) - kept_tail])
    used = sum(message_tokens(m) for m in (*system, *tail))
    while groups and used + sum(message_tokens(m) for g in groups for m in g) > budget:
        groups.pop(0)
    return (*system, *(m for g in groups for m in g), *tail)


def _new_messages(
    message: NewMessage, pending: tuple[ToolCall, ...], turn_id: str, now: datetime
) -> tuple[StoredMessage, ...]:
    """The turn's input as stored: the tool results (one per pending call), then the text."""
    results = message.tool_results or []
    called = {c.id for c in pending}
    for n, result in enumerate(results):
        if result.tool_call_id not in called:
            raise ApiError(
                400,
                "This result answers no call of the conversation's last answer.",
                "invalid_value",
                f"tool_results.{n}.tool_call_id",
            )
    if results and (missing := called - {r.tool_call_id for r in results}):
        raise ApiError(
            400,
            f"The last answer made calls without a result here: {', '.join(sorted(missing))}.",
            "invalid_value",
            "tool_results",
        )
    stored = [
        StoredMessage(
            role="tool",
            content=r.content,
            tool_call_id=r.tool_call_id,
            turn_id=turn_id,
            created_at=now,
        )
        for r in results
    ]
    if message.content is not None:
        stored.append(
            StoredMessage(role="user", content=message.content, turn_id=turn_id, created_at=now)
        )
    return tuple(stored)


def _turn_tools(
    entry: ModelEntry, conversation: Conversation, message: NewMessage
) -> tuple[FunctionTool, ...]:
    tools = conversation.tools if message.tools is None else message.tool_contracts
    check_tools_supported(entry, tools)
    problem = tool_choice_problem(message.tool_choice, {t.name for t in tools})
    if problem is not None:
        raise ApiError(400, f"tool_choice is {problem}.", "invalid_value", "tool_choice")
    return tools


async def begin_turn(
    store: ConversationStore,
    settings: GatewaySettings,
    catalog: Catalog,
    caller: Caller,
    conversation_id: str,
    message: NewMessage,
    correlation_id: str,
    turn_id: str,
) -> TurnPlan:
    """Record the user's message (or tool results) and reserve the conversation for a turn."""
    if message.content is None and message.tool_results is None:
        raise ApiError(
            400, "A message needs content, tool_results, or both.", "invalid_value", "content"
        )
    conversation = await load_conversation(store, caller, conversation_id)
    entry = chat_model(catalog, conversation.model)
    check_output_limit(entry, message.max_tokens)
    tools = _turn_tools(entry, conversation, message)
    check_fields(message.model_dump(exclude_unset=True), set(NewMessage.model_fields), entry)
    output_budget = message.max_tokens or min(entry.max_output_tokens, 1024)
    window = entry.context_window
    now = utc_now()
    deadline = turn_deadline(entry, settings, now)
    added = _new_messages(message, conversation.pending_tool_calls(), turn_id, now)
    # The new input, and with tool results the answer whose calls they answer.
    kept_tail = len(added) + (1 if message.tool_results else 0)
    tools_tokens = tools_bytes(tools) // CHARS_PER_TOKEN
    preview = conversation.model_copy(update={"messages": (*conversation.messages, *added)})
    needed = tools_tokens + sum(message_tokens(m) for m in preview.context()[-kept_tail:])
    if needed + output_budget > window:
        raise ApiError(
            400,
            f"The message is about {needed} tokens; with {output_budget} for the answer it "
            f"does not fit the model's context of {window} tokens.",
            "context_length_exceeded",
            "content" if message.content is not None else "tool_results",
        )

    def reserve(current: Conversation) -> Conversation:
        if current.busy(now):
            raise ApiError(
                409,
                "A turn is still running in this conversation; cancel it or wait for it.",
                "turn_in_progress",
            )
        # Checked again on what is stored now: another turn may have ended in between.
        again = _new_messages(message, current.pending_tool_calls(), turn_id, now)
        return current.model_copy(
            update={
                "messages": (*current.messages, *again),
                "active_turn_id": turn_id,
                "active_turn_deadline": deadline,
                "updated_at": now,
            }
        )

    updated = await store.update(caller.tenant_id, conversation_id, reserve)
    if updated is None:
        raise _not_found(conversation_id)
    budget = window - output_budget - tools_tokens
    spec = TurnSpec(
        conversation_id=conversation_id,
        turn_id=turn_id,
        correlation_id=correlation_id,
        messages=_fit_context(updated.context(), kept_tail, budget),
        tools=tools,
        tool_choice=to_tool_choice(message.tool_choice),
        parallel_tool_calls=message.parallel_tool_calls,
        params=GenerationParams(
            max_tokens=message.max_tokens,
            temperature=message.temperature,
            response_format=message.response_format and message.response_format.to_contract(),
        ),
    )
    request = chat_request(spec, entry, caller, settings, now)
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
    turn = events.turn
    transcript = TurnTranscript()
    answered, ended_well = False, False
    try:
        yield turn_started(turn.conversation_id, turn.turn_id, turn.model)
        async for item in events:
            transcript.add(item)
            answered = answered or (isinstance(item, TurnDelta) and bool(item.text))
            ended_well = _titles_follow(item, answered)
            if isinstance(item, TurnCompleted | TurnFailed):
                await keeper.keep(item, transcript, events.gateway_id)
                if calls := _calls_made(item, transcript):
                    yield calls
            yield format_item(item)
    finally:
        events.close()
    if title is not None and ended_well:
        async for frame in title.frames(turn.conversation_id, turn.turn_id):
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
    if not await turn_events_kept(bus, conversation.id, turn_id):
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
    # Read from the turn's start even when resuming: the whole calls sent with `done`
    # are built from every piece, also the ones this client already had.
    transcript = TurnTranscript()
    ended, answered, ended_well = False, False, False
    try:
        yield turn_started(conversation.id, turn_id, conversation.model)
        async for item in replay_turn(bus, conversation.id, turn_id, (0, 0), heartbeat_s):
            transcript.add(item)
            ended = ended or isinstance(item, TurnCompleted | TurnFailed)
            answered = answered or (isinstance(item, TurnDelta) and bool(item.text))
            ended_well = _titles_follow(item, answered)
            if isinstance(item, TurnCompleted | TurnFailed):
                await keeper.keep(item, transcript)
            if _past(item, after):
                if isinstance(item, TurnCompleted | TurnFailed) and (
                    calls := _calls_made(item, transcript)
                ):
                    yield calls
                yield format_item(item)
    finally:
        if not ended:
            request_cancel(bus, conversation.id, turn_id, grace_s)
    if title is not None and ended_well and wants_title(conversation, turn_id):
        async for frame in title.frames(conversation.id, turn_id):
            yield frame


def _past(item: TurnItem, after: EventPosition) -> bool:
    """The client has not had this item yet (a restart's reset sits at its attempt's start)."""
    if isinstance(item, Heartbeat):
        return True
    if isinstance(item, Reset):
        return (item.attempt, 0) > after
    return (item.attempt, item.seq) > after


def _calls_made(final: TurnCompleted | TurnFailed, transcript: TurnTranscript) -> bytes:
    """The whole tool calls of an answer that ended well; a broken one's calls are unusable."""
    if not isinstance(final, TurnCompleted) or final.finish_reason == "cancelled":
        return b""
    return b"".join(tool_call(call) for call in transcript.tool_calls)


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
    await forget_semantic_entries(bus.js, caller.tenant_id, conversation_id)
    await store.delete(caller.tenant_id, conversation_id)
