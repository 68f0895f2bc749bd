"""Titles on the conversation stream: asking the titler, and waiting for its answer.

The first turn's SSE stream stays open after `done` until the title arrives (or a
bounded wait ends), so a client that just started a conversation can show the
title without polling. The wait reads the TOKENBUS_TURNS stream, so it works on
any gateway replica, and also when the client re-attached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from nats.js.api import DeliverPolicy
from pydantic import ValidationError

from contracts import ConversationTitled, TitleRequest
from contracts.subjects import TITLE_REQUEST_SUBJECT, TURNS_STREAM, turn_event_subject
from services.gateway.conversations.models import Conversation
from services.gateway.conversations.store import ConversationStore, Unchanged
from services.gateway.turns.items import Heartbeat
from services.runtime.bus import Bus
from services.runtime.telemetry import with_trace_context

__all__ = ["first_exchange", "keep_title", "request_title", "wait_for_title", "wants_title"]

log = logging.getLogger("tokenbus.gateway.titles")

# The small utility model sees this much of the exchange; a title needs no more.
_EXCERPT_CHARS = 4000


def wants_title(conversation: Conversation, turn_id: str) -> bool:
    """The turn is (or will be) the conversation's first exchange, and nobody named it yet."""
    if conversation.title is not None:
        return False
    answered = [m for m in conversation.messages if m.role == "assistant" and m.content]
    return not answered or answered[0].turn_id == turn_id


def first_exchange(conversation: Conversation, turn_id: str) -> tuple[str, str] | None:
    """(user message, answer) when `turn_id` holds the first answer of an untitled conversation."""
    if conversation.title is not None:
        return None
    answers = [
        m
        for m in conversation.messages
        if m.role == "assistant" and m.content and m.status != "failed"
    ]
    if not answers or answers[0].turn_id != turn_id:
        return None
    # The first thing the user asked: the answer may come a turn later, after tool calls.
    asked = next((m.content for m in conversation.messages if m.role == "user"), None)
    if not asked:
        return None
    return asked[:_EXCERPT_CHARS], answers[0].content[:_EXCERPT_CHARS]


async def request_title(
    bus: Bus, conversation: Conversation, turn_id: str, gateway_id: str, correlation_id: str
) -> None:
    exchange = first_exchange(conversation, turn_id)
    if exchange is None:
        return
    user_message, answer = exchange
    request = TitleRequest(
        correlation_id=correlation_id,
        tenant_id=conversation.tenant_id,
        user_id=conversation.user_id,
        gateway_id=gateway_id,
        conversation_id=conversation.id,
        turn_id=turn_id,
        user_message=user_message,
        assistant_message=answer,
    )
    # Asked again on a redelivery: the server drops the copy, the titler's claim the rest.
    await bus.js.publish(
        TITLE_REQUEST_SUBJECT,
        request.model_dump_json().encode(),
        headers=with_trace_context({"Nats-Msg-Id": f"title-request-{conversation.id}"}),
    )


async def keep_title(store: ConversationStore, event: ConversationTitled) -> bool:
    """Store the titler's title; False if a user's title stands or the conversation is gone."""

    def retitle(current: Conversation) -> Conversation:
        if current.title_source == "user" or current.title == event.title:
            raise Unchanged  # a user's own title is never replaced
        return current.model_copy(update={"title": event.title, "title_source": event.source})

    stored = await store.update(event.tenant_id, event.conversation_id, retitle)
    return stored is not None and stored.title == event.title and stored.title_source != "user"


async def wait_for_title(
    bus: Bus, conversation_id: str, turn_id: str, wait_s: float, heartbeat_s: float
) -> AsyncIterator[ConversationTitled | Heartbeat]:
    """The title event of `turn_id` once it is on the stream; heartbeats meanwhile."""
    sub = await bus.js.subscribe(
        turn_event_subject("*", conversation_id, turn_id, "title"),
        stream=TURNS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + wait_s
    try:
        while (left := give_up_at - loop.time()) > 0:
            try:
                msg = await sub.next_msg(timeout=min(heartbeat_s, left))
            except TimeoutError:
                yield Heartbeat()
                continue
            try:
                yield ConversationTitled.model_validate_json(msg.data)
            except ValidationError:
                log.warning("skipped a title event that breaks the contract")
                continue
            return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
