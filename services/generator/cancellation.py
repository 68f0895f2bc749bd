"""Which turns the client has given up on, and stopping them at once.

Every generator replica hears every cancel. The replica running the turn
cancels its task, which closes the upstream HTTP response, which makes the
provider stop generating. The others remember the turn for a while, in case
its request is still queued and reaches them later.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CancelRegistry"]

_CANCEL_MESSAGE = "turn cancelled by its client"


class CancelRegistry:
    def __init__(self, remember_s: float = 600.0, max_remembered: int = 100_000) -> None:
        self._running: dict[str, asyncio.Task[object]] = {}
        self._cancelled: OrderedDict[str, float] = OrderedDict()
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._remember_s = remember_s
        self._max_remembered = max_remembered

    def cancel_after(self, turn_id: str, grace_s: float) -> None:
        """Cancel unless a reader re-attaches within `grace_s` (a reload, a network blip)."""
        self.attached(turn_id)
        loop = asyncio.get_running_loop()
        self._pending[turn_id] = loop.call_later(grace_s, self.cancel, turn_id)

    def attached(self, turn_id: str) -> None:
        timer = self._pending.pop(turn_id, None)
        if timer is not None:
            timer.cancel()

    def cancel(self, turn_id: str) -> None:
        self.attached(turn_id)
        self._cancelled[turn_id] = time.monotonic() + self._remember_s
        self._cancelled.move_to_end(turn_id)
        self._forget_old()
        task = self._running.get(turn_id)
        if task is not None:
            task.cancel(_CANCEL_MESSAGE)

    def is_cancelled(self, turn_id: str) -> bool:
        expires = self._cancelled.get(turn_id)
        return expires is not None and expires > time.monotonic()

    def task_of(self, turn_id: str) -> asyncio.Task[object] | None:
        """The task producing `turn_id` in this process, if one is."""
        return self._running.get(turn_id)

    @contextmanager
    def running(self, turn_id: str) -> Iterator[None]:
        """Mark the current task as the one producing `turn_id`."""
        task = asyncio.current_task()
        assert task is not None
        self._running[turn_id] = task
        try:
            yield
        finally:
            self._running.pop(turn_id, None)

    def _forget_old(self) -> None:
        now = time.monotonic()
        while self._cancelled and (
            len(self._cancelled) > self._max_remembered
            or next(iter(self._cancelled.values())) < now
        ):
            self._cancelled.popitem(last=False)
