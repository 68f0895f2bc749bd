"""The gateway's relay hands each replica exactly its own turns' events."""

from __future__ import annotations

import asyncio

from contracts import new_id
from contracts.subjects import turn_event_subject
from services.gateway.turns.relay import TurnRelay
from services.runtime.bus import Bus


async def test_delivers_events_of_its_own_turns_in_order_and_nothing_else(bus: Bus) -> None:
    mine, other = TurnRelay(bus, new_id("gw")), TurnRelay(bus, new_id("gw"))
    await mine.start()
    await other.start()
    try:
        turn = new_id()
        inbox = mine.open(turn)
        for n in range(100):
            await bus.js.publish(turn_event_subject(mine.gateway_id, "c", turn, "delta"), b"%d" % n)
        await bus.js.publish(turn_event_subject(mine.gateway_id, "c", new_id(), "delta"), b"stray")
        got = [await asyncio.wait_for(inbox.get(), 5) for _ in range(100)]
        assert got == [b"%d" % n for n in range(100)]
        await asyncio.sleep(0.1)
        assert inbox.empty()
        assert other.open_turns == 0
        mine.close(turn)
        assert mine.open_turns == 0
    finally:
        await mine.stop()
        await other.stop()
