"""A turn reaches its reader complete or visibly broken, never silently shortened.

Against a real nats-server: events published out of order (as a generator re-sends
what a bus restart swallowed), one that never comes, and live events missed while
the connection was down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from contracts import (
    ChatMessage,
    ChatRequest,
    TurnCompleted,
    TurnDelta,
    TurnFailed,
    TurnUsage,
    new_id,
)
from contracts.subjects import CONVERSATIONS_BUCKET, EVENT_KINDS, turn_event_subject
from services.gateway.conversations.models import Conversation
from services.gateway.conversations.recorder import record_answer
from services.gateway.conversations.store import KvConversationStore
from services.gateway.turns.items import Heartbeat, TurnItem
from services.gateway.turns.live import TurnEvents
from services.gateway.turns.relay import TurnRelay
from services.runtime.bus import Bus

Event = TurnDelta | TurnUsage | TurnCompleted | TurnFailed


@pytest.fixture
async def relay(bus: Bus) -> AsyncIterator[TurnRelay]:
    relay = TurnRelay(bus, new_id("gw"))
    await relay.start()
    yield relay
    await relay.stop()


def a_request(relay: TurnRelay) -> ChatRequest:
    return ChatRequest(
        correlation_id=new_id(),
        gateway_id=relay.gateway_id,
        conversation_id=new_id("conv"),
        turn_id=new_id(),
        model="m",
        messages=(ChatMessage(role="user", content="hi"),),
    )


class Turn:
    def __init__(self, bus: Bus, request: ChatRequest) -> None:
        self.bus, self.request = bus, request

    def envelope(self, seq: int) -> dict[str, object]:
        r = self.request
        return {"correlation_id": r.correlation_id, "conversation_id": r.conversation_id,
                "turn_id": r.turn_id, "seq": seq}  # fmt: skip

    def delta(self, seq: int) -> TurnDelta:
        return TurnDelta(**self.envelope(seq), text=f"[{seq}]")

    def done(self, seq: int) -> TurnCompleted:
        return TurnCompleted(**self.envelope(seq), model="m", finish_reason="stop")

    async def publish(self, *events: Event) -> None:
        for event in events:
            subject = turn_event_subject(
                self.request.gateway_id,
                event.conversation_id,
                event.turn_id,
                EVENT_KINDS[event.type],
            )
            await self.bus.js.publish(
                subject,
                event.model_dump_json().encode(),
                headers={"Nats-Msg-Id": f"{event.turn_id}.{event.attempt}.{event.seq}"},
            )


async def read_all(events: TurnEvents) -> list[TurnItem]:
    items: list[TurnItem] = []
    async with asyncio.timeout(20):
        async for item in events:
            if not isinstance(item, Heartbeat):
                items.append(item)
    return items


def texts(items: list[TurnItem]) -> str:
    return "".join(i.text for i in items if isinstance(i, TurnDelta))


async def test_an_event_resent_late_is_relayed_in_its_place(bus: Bus, relay: TurnRelay) -> None:
    request = a_request(relay)
    turn = Turn(bus, request)
    events = TurnEvents(bus, relay, request, heartbeat_s=1)
    reading = asyncio.create_task(read_all(events))
    await turn.publish(turn.delta(1), turn.delta(3), turn.delta(4))
    await asyncio.sleep(0.2)
    await turn.publish(turn.delta(2), turn.done(5))  # what a generator re-sends before its end
    items = await reading
    assert texts(items) == "[1][2][3][4]"
    assert isinstance(items[-1], TurnCompleted)


async def test_a_turn_that_lost_an_event_ends_with_an_error_not_done(
    bus: Bus, relay: TurnRelay
) -> None:
    request = a_request(relay)
    turn = Turn(bus, request)
    events = TurnEvents(bus, relay, request, heartbeat_s=1)
    reading = asyncio.create_task(read_all(events))
    await turn.publish(turn.delta(1), turn.delta(3), turn.done(4))
    items = await reading
    assert texts(items) == "[1]"
    last = items[-1]
    assert isinstance(last, TurnFailed)
    assert (last.code, last.retryable) == ("stream_interrupted", True)


async def test_live_events_missed_while_disconnected_are_read_from_the_stream(
    bus: Bus, relay: TurnRelay
) -> None:
    request = a_request(relay)
    turn = Turn(bus, request)
    events = TurnEvents(bus, relay, request, heartbeat_s=1)
    reading = asyncio.create_task(read_all(events))
    await turn.publish(turn.delta(1))
    await asyncio.sleep(0.2)
    # As if this connection were down: the live path hears nothing of what follows.
    inbox = relay._inboxes.pop(request.turn_id)
    await turn.publish(turn.delta(2), turn.delta(3), turn.done(4))
    relay._inboxes[request.turn_id] = inbox
    bus.reconnected()
    items = await reading
    assert texts(items) == "[1][2][3]"
    assert isinstance(items[-1], TurnCompleted)


async def test_a_turn_that_lost_an_event_is_stored_as_failed(bus: Bus, relay: TurnRelay) -> None:
    request = a_request(relay)
    turn = Turn(bus, request)
    store = KvConversationStore(await bus.js.key_value(CONVERSATIONS_BUCKET), bus.js)
    await store.create(
        Conversation(id=request.conversation_id, tenant_id="default", user_id="default", model="m")
    )
    final = turn.done(4)
    await turn.publish(turn.delta(1), turn.delta(3), final)
    stored = await record_answer(bus, store, final)
    assert stored is not None
    answer = stored.messages[-1]
    assert (answer.status, answer.error_code, answer.content) == (
        "failed",
        "stream_interrupted",
        "[1]",
    )
