"""A circuit breaker per upstream: stop sending to a model that keeps failing.

Closed: calls go through and outcomes are counted over a sliding window. Open
(failure rate over the threshold, with enough calls to judge): calls are
refused at once, so a turn moves to its fallback without waiting. After a
cooldown, half-open: one probe goes through; success closes, failure reopens.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["BreakerConfig", "BreakerState", "CircuitBreaker"]

log = logging.getLogger("tokenbus.generator.breaker")

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerConfig:
    window_s: float = 30.0
    min_calls: int = 5
    failure_rate: float = 0.5
    cooldown_s: float = 15.0


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        config: BreakerConfig = BreakerConfig(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._config = config
        self._clock = clock
        self._outcomes: deque[tuple[float, bool]] = deque()
        # Kept as outcomes come and go: at hundreds of calls a second, summing the
        # window on every call cost more than the call's own bookkeeping.
        self._failures = 0
        self._state: BreakerState = "closed"
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self._config.cooldown_s:
            self._set("half_open")
        return self._state

    def allow(self) -> bool:
        """May a call go upstream now? In half-open, only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def record(self, success: bool) -> None:
        now = self._clock()
        if self._state == "half_open":
            self._probing = False
            if success:
                self._outcomes.clear()
                self._failures = 0
                self._set("closed")
            else:
                self._open(now)
            return
        self._outcomes.append((now, success))
        self._failures += not success
        while self._outcomes and now - self._outcomes[0][0] > self._config.window_s:
            _, ok = self._outcomes.popleft()
            self._failures -= not ok
        calls = len(self._outcomes)
        if calls >= self._config.min_calls and self._failures / calls >= self._config.failure_rate:
            self._open(now)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._set("open")

    def _set(self, state: BreakerState) -> None:
        if state != self._state:
            log.warning("circuit breaker", extra={"upstream": self.name, "state": state})
            self._state = state
