"""The JetStream worker's error policy, on a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.js.api import StreamConfig
from pydantic import BaseModel, ConfigDict

from contracts import DeadLetter, new_id
from contracts.subjects import DEADLETTER_STREAM, deadletter_subject
from services.runtime.bus import Bus
from services.runtime.worker import Delivery, JetStreamWorker, Retry, WorkerConfig


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)
    n: int


class Scenario:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.name = new_id("t")
        self.subject = f"test.{self.name}"
        self.seen: list[tuple[int, int]] = []
        self.workers: list[tuple[JetStreamWorker[Job], asyncio.Task[None]]] = []

    async def setup(self) -> None:
        await self.bus.js.add_stream(StreamConfig(name=self.name, subjects=[self.subject]))

    def start(
        self, handler: Callable[[Job, Delivery], Awaitable[None]], max_deliver: int = 3
    ) -> None:
        config = WorkerConfig(
            stream=self.name,
            subjects=(self.subject,),
            durable=self.name,
            max_deliver=max_deliver,
            retry_delay_s=0.05,
        )
        worker = JetStreamWorker(self.bus.js, config, Job.model_validate_json, handler)
        self.workers.append((worker, asyncio.create_task(worker.run())))

    async def publish(self, payload: bytes) -> None:
        await self.bus.js.publish(self.subject, payload)

    async def dead_letters(self) -> list[DeadLetter]:
        sub = await self.bus.js.subscribe(
            deadletter_subject(self.name), stream=DEADLETTER_STREAM, ordered_consumer=True
        )
        letters = []
        try:
            while True:
                msg = await sub.next_msg(timeout=0.5)
                letters.append(DeadLetter.model_validate_json(msg.data))
        except TimeoutError:
            return letters
        finally:
            await sub.unsubscribe()

    async def stop(self) -> None:
        for worker, task in self.workers:
            worker.stop()
            await task
        await self.bus.js.delete_stream(self.name)


@pytest.fixture
async def scenario(bus: Bus) -> AsyncIterator[Scenario]:
    s = Scenario(bus)
    await s.setup()
    yield s
    await s.stop()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


async def test_dead_letters_a_malformed_message_with_the_reason_and_keeps_going(
    scenario: Scenario,
) -> None:
    async def handle(job: Job, delivery: Delivery) -> None:
        scenario.seen.append((job.n, delivery.attempt))

    scenario.start(handle)
    await scenario.publish(b'{"n": "not a number"}')
    await scenario.publish(b"not json at all")
    await scenario.publish(b'{"n": 7}')
    await eventually(lambda: scenario.seen == [(7, 1)])

    letters = await scenario.dead_letters()
    assert len(letters) == 2
    assert all(letter.consumer == scenario.name for letter in letters)
    assert "contract violation" in letters[0].reason
    assert "n:" in letters[0].reason
    assert letters[1].payload == "not json at all"


async def test_a_transient_failure_is_redelivered(scenario: Scenario) -> None:
    async def handle(job: Job, delivery: Delivery) -> None:
        scenario.seen.append((job.n, delivery.attempt))
        if delivery.attempt == 1:
            raise Retry("upstream busy", delay=0.05)

    scenario.start(handle)
    await scenario.publish(b'{"n": 1}')
    await eventually(lambda: scenario.seen == [(1, 1), (1, 2)])
    assert await scenario.dead_letters() == []


async def test_gives_up_after_max_deliver_and_dead_letters(scenario: Scenario) -> None:
    async def handle(job: Job, delivery: Delivery) -> None:
        scenario.seen.append((job.n, delivery.attempt))
        raise RuntimeError("always broken")

    scenario.start(handle, max_deliver=2)
    await scenario.publish(b'{"n": 5}')
    await eventually(lambda: len(scenario.seen) == 2)
    await asyncio.sleep(0.2)
    letters = await scenario.dead_letters()
    assert len(letters) == 1
    assert "gave up after 2 deliveries" in letters[0].reason
    assert "RuntimeError" in letters[0].reason


async def test_replicas_share_the_work_and_each_message_is_handled_once(
    scenario: Scenario,
) -> None:
    by_replica: dict[int, list[int]] = {0: [], 1: []}

    def replica(index: int) -> Callable[[Job, Delivery], Awaitable[None]]:
        async def handle(job: Job, delivery: Delivery) -> None:
            await asyncio.sleep(0.01)
            by_replica[index].append(job.n)

        return handle

    scenario.start(replica(0))
    scenario.start(replica(1))
    for n in range(200):
        await scenario.publish(f'{{"n": {n}}}'.encode())
    await eventually(lambda: len(by_replica[0]) + len(by_replica[1]) == 200)
    await asyncio.sleep(0.2)
    assert sorted(by_replica[0] + by_replica[1]) == list(range(200))
    assert by_replica[0]
    assert by_replica[1]
