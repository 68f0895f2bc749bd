"""Stored responses as turns of tokenbus conversations.

A stored response is a turn: its input items are the turn's messages, its
answer the turn's answer, both kept in the conversation record where every
conversation lives (TOKENBUS_CONVERSATIONS), with the request's settings beside
them for `GET /v1/responses/{id}`. `previous_response_id` continues that
conversation; continuing from a response that is not its conversation's last
(OpenAI allows branching) starts a new conversation with the history up to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts import ChatMessage, ToolCall, new_id, utc_now
from services.gateway.caller import Caller
from services.gateway.conversations.models import Conversation, StoredMessage
from services.gateway.conversations.store import ConversationStore
from services.gateway.http.errors import ApiError
from services.gateway.responses.ids import parse_response_id, response_id
from services.gateway.responses.wire import failure_error, output_items, response_body, wire_status

__all__ = [
    "Previous",
    "TurnSlot",
    "abandon",
    "find_previous",
    "place_turn",
    "read_response",
    "slot_for",
    "stored_turn",
]


@dataclass(frozen=True, slots=True)
class Previous:
    """The response a request continues, in its conversation."""

    conversation: Conversation
    turn_id: str

    @property
    def history(self) -> tuple[StoredMessage, ...]:
        """The conversation's messages up to and including that response's answer."""
        last = max(n for n, m in enumerate(self.conversation.messages) if m.turn_id == self.turn_id)
        return self.conversation.messages[: last + 1]

    @property
    def latest(self) -> bool:
        """The response is its conversation's last turn, and nothing runs after it."""
        return self.conversation.last_turn_id() == self.turn_id

    @property
    def pending_calls(self) -> tuple[ToolCall, ...]:
        """The calls its answer made: the next input may answer them."""
        return self.conversation.model_copy(update={"messages": self.history}).pending_tool_calls()

    def context(self, then: tuple[ChatMessage, ...] = ()) -> tuple[ChatMessage, ...]:
        """What the model sees of the history followed by `then`, the new input.

        Read together: the history's last calls go to the model only if `then` answers them.
        """
        messages = (*self.history, *_stored_input(then, None, utc_now()))
        return self.conversation.model_copy(update={"messages": messages}).context()


def _not_found(param: str | None, value: str) -> ApiError:
    return ApiError(404, f"No response with id '{value}' found.", "response_not_found", param)


async def stored_turn(
    store: ConversationStore, caller: Caller, value: str, param: str | None = None
) -> tuple[Conversation, str]:
    """The caller's own conversation and turn the id names; anyone else's is not found."""
    turn = parse_response_id(value)
    conversation = None if turn is None else await store.get(caller.tenant_id, turn.conversation_id)
    if (
        turn is None
        or conversation is None
        or conversation.user_id != caller.user_id
        or turn.turn_id not in conversation.turn_settings
    ):
        raise _not_found(param, value)
    return conversation, turn.turn_id


async def find_previous(store: ConversationStore, caller: Caller, value: str) -> Previous:
    conversation, turn_id = await stored_turn(store, caller, value, "previous_response_id")
    if not conversation.has_answer_for(turn_id):
        raise ApiError(
            409,
            f"The response '{value}' is still in progress; continue from it once it has ended.",
            "turn_in_progress",
            "previous_response_id",
        )
    return Previous(conversation, turn_id)


def _stored_input(
    messages: tuple[ChatMessage, ...], turn_id: str | None, now: datetime
) -> tuple[StoredMessage, ...]:
    return tuple(
        StoredMessage(
            role=m.role,
            content=m.content,
            tool_calls=m.tool_calls,
            tool_call_id=m.tool_call_id,
            turn_id=turn_id,
            created_at=now,
        )
        for m in messages
    )


@dataclass(frozen=True, slots=True)
class TurnSlot:
    """Where a stored response's turn goes, and what is in that conversation before it."""

    conversation_id: str
    continues: bool
    """True: the previous response's conversation itself; False: a new one (maybe a branch)."""
    history: tuple[StoredMessage, ...] = ()
    after_turn: str | None = None
    """The turn this one follows, which must still be the conversation's last."""


def slot_for(previous: Previous | None) -> TurnSlot:
    if previous is None:
        return TurnSlot(new_id("conv"), continues=False)
    if previous.latest:
        return TurnSlot(previous.conversation.id, continues=True, after_turn=previous.turn_id)
    return TurnSlot(new_id("conv"), continues=False, history=previous.history)


async def place_turn(
    store: ConversationStore,
    caller: Caller,
    slot: TurnSlot,
    model: str,
    messages: tuple[ChatMessage, ...],
    turn_id: str,
    settings: dict[str, Any],
    deadline: datetime,
    now: datetime,
) -> Conversation:
    """Record the input and reserve the conversation for the turn; the conversation then."""
    added = _stored_input(messages, turn_id, now)
    if not slot.continues:
        conversation = Conversation(
            id=slot.conversation_id,
            tenant_id=caller.tenant_id,
            user_id=caller.user_id,
            model=model,
            messages=(*slot.history, *added),
            active_turn_id=turn_id,
            active_turn_deadline=deadline,
            turn_settings={turn_id: settings},
            created_at=now,
            updated_at=now,
        )
        await store.create(conversation)
        return conversation

    def reserve(current: Conversation) -> Conversation:
        if current.busy(now) or current.last_turn_id() != slot.after_turn:
            raise ApiError(
                409,
                "Another response continued this one meanwhile; retry.",
                "turn_in_progress",
                "previous_response_id",
            )
        return current.model_copy(
            update={
                "model": model,
                "messages": (*current.messages, *added),
                "active_turn_id": turn_id,
                "active_turn_deadline": deadline,
                "turn_settings": {**current.turn_settings, turn_id: settings},
                "updated_at": now,
            }
        )

    updated = await store.update(caller.tenant_id, slot.conversation_id, reserve)
    if updated is None:  # deleted in between
        raise _not_found("previous_response_id", settings.get("previous_response_id") or "")
    return updated


async def abandon(store: ConversationStore, caller: Caller, slot: TurnSlot, turn_id: str) -> None:
    """The request never reached the bus: take back what place_turn recorded."""
    if not slot.continues:
        await store.delete(caller.tenant_id, slot.conversation_id)
        return

    def undo(current: Conversation) -> Conversation:
        return current.model_copy(
            update={
                "messages": tuple(m for m in current.messages if m.turn_id != turn_id),
                "active_turn_id": None,
                "active_turn_deadline": None,
                "turn_settings": {k: v for k, v in current.turn_settings.items() if k != turn_id},
            }
        )

    await store.update(caller.tenant_id, slot.conversation_id, undo)


async def read_response(store: ConversationStore, caller: Caller, value: str) -> dict[str, Any]:
    """GET /v1/responses/{id}: the stored response, as far as its turn has come."""
    conversation, turn_id = await stored_turn(store, caller, value, None)
    settings = conversation.turn_settings[turn_id]
    answer = next(
        (m for m in conversation.messages if m.role == "assistant" and m.turn_id == turn_id), None
    )
    rid = response_id(conversation.id, turn_id, stored=True)
    if answer is None:
        return response_body(rid, settings, "in_progress", [])
    usage = None if answer.usage is None else (answer.usage.input_tokens,
                                                answer.usage.output_tokens, 0)  # fmt: skip
    if answer.status == "failed":
        error = failure_error(answer.error_code or "upstream_error", "The response failed")
        output = output_items(turn_id, answer.content, (), "incomplete") if answer.content else []
        return response_body(
            rid, settings, "failed", output, usage, model=answer.model, error=error
        )
    status, incomplete = (
        wire_status(answer.finish_reason)
        if answer.finish_reason is not None
        else ("completed" if answer.status == "complete" else "cancelled", None)
    )
    item_status = "completed" if status == "completed" else "incomplete"
    output = output_items(turn_id, answer.content, answer.tool_calls, item_status)
    completed_at = int(answer.created_at.timestamp()) if status == "completed" else None
    return response_body(
        rid,
        settings,
        status,
        output,
        usage,
        model=answer.model,
        incomplete=incomplete,
        completed_at=completed_at,
    )
