"""Prometheus metrics every bus consumer has, and the timing of a token stream.

Label values come from small fixed sets (consumer names, streams, outcomes):
never a request, conversation, turn or key id, which would make one series per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONSUMER_ACK_PENDING",
    "CONSUMER_HANDLE_SECONDS",
    "CONSUMER_MESSAGES",
    "CONSUMER_PENDING",
    "CONSUMER_REDELIVERED",
    "LATENCY_BUCKETS",
    "TOKEN_GAP_BUCKETS",
    "TokenTimer",
]

# Seconds: first tokens of a local model take ~0.3 s, a remote one several.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Seconds between output tokens: ~10-15 ms on a local model, up to ~100 ms remote.
TOKEN_GAP_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0)

CONSUMER_MESSAGES = Counter(
    "tokenbus_consumer_messages_total",
    "Bus messages a durable consumer finished with, by outcome "
    "(handled, retried: nacked for redelivery, dead_lettered)",
    ["consumer", "outcome"],
)
CONSUMER_HANDLE_SECONDS = Histogram(
    "tokenbus_consumer_handle_seconds",
    "Time from taking a bus message to acking, nacking or dead-lettering it",
    ["consumer"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_PENDING = Gauge(
    "tokenbus_consumer_pending_messages",
    "Messages of the stream not yet handed to the durable consumer (its lag, num_pending)",
    ["stream", "consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "tokenbus_consumer_ack_pending_messages",
    "Messages handed out and not yet acked (in flight, num_ack_pending)",
    ["stream", "consumer"],
)
CONSUMER_REDELIVERED = Gauge(
    "tokenbus_consumer_redelivered_messages",
    "Messages handed out more than once and not yet acked (num_redelivered)",
    ["stream", "consumer"],
)


class TokenTimer:
    """Time to first token and time per output token of one stream.

    Time per output token is (end - first token) / (output tokens - 1): the
    decoding pace, whatever size the chunks come in.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start = clock()
        self._first: float | None = None
        self._end: float | None = None

    def token(self) -> float | None:
        """Note a piece of output; on the first one, the time to first token."""
        if self._first is not None:
            return None
        self._first = self._clock()
        return self._first - self._start

    def finish(self) -> None:
        if self._end is None:
            self._end = self._clock()

    def per_output_token(self, output_tokens: int | None) -> float | None:
        if self._first is None or self._end is None or not output_tokens or output_tokens < 2:
            return None
        return (self._end - self._first) / (output_tokens - 1)
