"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

from services.generator.breaker import BreakerConfig, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CONFIG = BreakerConfig(window_s=10, min_calls=4, failure_rate=0.5, cooldown_s=5)


def test_opens_when_enough_calls_fail_and_refuses_at_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", CONFIG, clock)
    for ok in (True, False, True):
        breaker.record(ok)
    assert breaker.state == "closed"  # too few calls to judge
    breaker.record(False)
    assert breaker.state == "open"
    assert not breaker.allow()


def test_half_open_lets_one_probe_through_and_closes_on_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", CONFIG, clock)
    for _ in range(4):
        breaker.record(False)
    clock.now = 5.0
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()  # only one probe at a time
    breaker.record(True)
    assert breaker.state == "closed"
    assert breaker.allow()


def test_a_failed_probe_opens_it_again_for_another_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", CONFIG, clock)
    for _ in range(4):
        breaker.record(False)
    clock.now = 5.0
    assert breaker.allow()
    breaker.record(False)
    assert breaker.state == "open"
    clock.now = 9.0
    assert breaker.state == "open"
    clock.now = 10.0
    assert breaker.state == "half_open"


def test_old_failures_fall_out_of_the_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", CONFIG, clock)
    for _ in range(3):
        breaker.record(False)
    clock.now = 20.0
    breaker.record(False)
    assert breaker.state == "closed"


def test_the_rate_is_of_the_calls_in_the_window_only() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", CONFIG, clock)
    for ok in (False, False, False, True):
        breaker.record(ok)
        clock.now += 1
    assert breaker.state == "open"
    clock.now = 30.0  # cooled down, then a probe that closes it
    assert breaker.allow()
    breaker.record(True)
    for ok in (True, True, False, True):  # 1 in 4: under the rate
        breaker.record(ok)
    assert breaker.state == "closed"
    clock.now = 45.0  # all of those out of the window; 2 in 4 now
    for ok in (False, True, False, True):
        breaker.record(ok)
    assert breaker.state == "open"


def test_failures_that_left_the_window_no_longer_count() -> None:
    clock = Clock()
    breaker = CircuitBreaker("m", CONFIG, clock)
    for ok in (False, True, False):
        breaker.record(ok)
    clock.now = 11.0
    for ok in (True, True, False, True):  # 1 in 4 once the first three are out
        breaker.record(ok)
    assert breaker.state == "closed"
