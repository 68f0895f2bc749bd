"""The gateway refuses new work while requests wait too long for a generator."""

from __future__ import annotations

import asyncio

import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from contracts.subjects import CHAT_REQUEST_SUBJECT, REQUESTS_STREAM
from services.gateway.admission.backpressure import GENERATOR_CONSUMER, QueueMonitor
from services.gateway.http.errors import ApiError
from services.runtime.bus import Bus


async def test_answers_503_with_retry_after_while_the_oldest_request_waits_too_long(
    bus: Bus,
) -> None:
    await bus.js.add_consumer(
        REQUESTS_STREAM,
        ConsumerConfig(
            durable_name=GENERATOR_CONSUMER,
            filter_subject=CHAT_REQUEST_SUBJECT,
            ack_policy=AckPolicy.EXPLICIT,
        ),
    )
    try:
        monitor = QueueMonitor(bus, max_age_s=0.5)
        await monitor.refresh()
        monitor.check()  # nothing waits: accepted

        for n in range(3):
            await bus.js.publish(CHAT_REQUEST_SUBJECT, b"{}", headers={"Nats-Msg-Id": f"bp{n}"})
        await monitor.refresh()
        assert monitor.waiting == 3
        monitor.check()  # waiting, but not for long yet

        await asyncio.sleep(1.6)
        await monitor.refresh()
        assert monitor.oldest_age_s > 1.0
        with pytest.raises(ApiError) as refused:
            monitor.check()
        assert refused.value.status == 503
        assert refused.value.code == "overloaded"
        assert refused.value.headers is not None
        assert int(refused.value.headers["Retry-After"]) >= 1
    finally:
        await bus.js.delete_consumer(REQUESTS_STREAM, GENERATOR_CONSUMER)
        await bus.js.purge_stream(REQUESTS_STREAM)
