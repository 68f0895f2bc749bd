"""Live turn events for this gateway replica, handed to the request waiting for each turn.

One long-lived subscription per replica (not one per request): it exists before
any request is published, so no first token can slip past it, and the server
keeps no per-request state for the live path.

Core NATS delivers at most once: what is published while this replica's
connection is down never reaches it. So after a reconnect every open turn is
told to resync (RESYNC in its inbox) and reads on from the turns stream, which
kept everything.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from contracts.subjects import gateway_turns_filter, turn_id_from_subject
from services.runtime.bus import Bus

__all__ = ["RESYNC", "Inbox", "TurnRelay"]

log = logging.getLogger("tokenbus.gateway.relay")

RESYNC = None
"""Put in an inbox when live events may have been missed: read the rest from the stream."""


class Inbox:
    """One turn's raw events as they arrive, for the one reader of that turn.

    Not an asyncio.Queue read through asyncio.wait_for: that wraps every get in a
    task of its own, one more trip through the event loop per token. Here a get
    with something buffered returns at once, and a waiting one costs one future.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[bytes | None] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: bytes | None) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, timeout: float | None = None) -> bytes | None:  # noqa: ASYNC109
        """The next item; TimeoutError if none came within `timeout` seconds."""
        if self._items:
            return self._items.popleft()
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        if not self._items:
            raise TimeoutError
        return self._items.popleft()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class TurnRelay:
    def __init__(self, bus: Bus, gateway_id: str) -> None:
        self._bus = bus
        self._gateway_id = gateway_id
        self._inboxes: dict[str, Inbox] = {}
        self._sub: Subscription | None = None

    @property
    def gateway_id(self) -> str:
        return self._gateway_id

    @property
    def live(self) -> bool:
        return self._sub is not None and self._bus.connected

    @property
    def open_turns(self) -> int:
        return len(self._inboxes)

    async def start(self) -> None:
        self._bus.on_reconnect(self._resync_all)
        self._sub = await self._bus.nc.subscribe(
            gateway_turns_filter(self._gateway_id), cb=self._deliver
        )
        # A JetStream API round trip travels behind the SUB on this connection,
        # so once it answers the server has registered the subscription.
        await self._bus.js.account_info()

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    def open(self, turn_id: str) -> Inbox:
        """Register before publishing the request; the turn's events queue up here."""
        inbox = self._inboxes[turn_id] = Inbox()
        return inbox

    def close(self, turn_id: str) -> None:
        self._inboxes.pop(turn_id, None)

    async def _deliver(self, msg: Msg) -> None:
        queue = self._inboxes.get(turn_id_from_subject(msg.subject))
        if queue is not None:
            queue.put_nowait(msg.data)

    def _resync_all(self) -> None:
        if self._inboxes:
            log.info("resyncing open turns after a reconnect", extra={"turns": len(self._inboxes)})
        for queue in self._inboxes.values():
            queue.put_nowait(RESYNC)
