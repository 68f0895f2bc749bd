"""A 3-node JetStream cluster loses the leader of the request stream mid-traffic.

Three local nats-server processes form a cluster; the services themselves create
every stream with 3 replicas (TOKENBUS_JETSTREAM_REPLICAS=3) and reach the
cluster through a comma-separated TOKENBUS_NATS_URL. The real generator and usage
processes serve chat requests on the real local model. The node that leads the
request stream is made to lead the turn and usage streams and both durable
consumers too; it is SIGKILLed while turns are in flight, and more requests are
published while the cluster elects new leaders. The scenario runs once; each
test checks one promise about what it left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats.errors
import orjson
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from contracts import (
    ChatMessage,
    ChatRequest,
    GenerationParams,
    TurnCompleted,
    TurnDelta,
    TurnFailed,
    TurnUsage,
    new_id,
    parse_turn_event,
)
from contracts.subjects import (
    CHAT_REQUEST_SUBJECT,
    DEADLETTER_STREAM,
    PREFIX,
    REQUESTS_STREAM,
    TURNS_STREAM,
    USAGE_STREAM,
    USAGE_SUBJECTS,
    gateway_turns_filter,
    turn_kind_filter,
)
from services.runtime.bus import Bus, connect
from services.runtime.embedded_nats import free_port
from tests.cluster import (
    NatsCluster,
    consumer_leader,
    kill_stream_leader,
    move_leader,
    running_cluster,
    stream_leader,
)
from tests.support import stop_process

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m"
BEFORE_KILL = 10
AFTER_KILL = 8
# Long enough that turns are still running when the leader dies (4 model slots).
MAX_TOKENS = 40
# The token measures of the usage counters (the local model is free: no cost).
MEASURES = ("input_tokens", "output_tokens", "cached_input_tokens", "turns")

AnyTurnEvent = TurnDelta | TurnUsage | TurnCompleted | TurnFailed


@dataclass
class Services:
    generator: subprocess.Popen[bytes]
    usage: subprocess.Popen[bytes]
    logs: Path

    def running(self) -> bool:
        return self.generator.poll() is None and self.usage.poll() is None

    def tail(self) -> str:
        parts = []
        for name in ("generator", "usage"):
            text = (self.logs / f"{name}.log").read_text(errors="replace")
            lines = [line for line in text.splitlines() if "HTTP Request" not in line]
            parts.append(f"--- {name} ---\n" + "\n".join(lines[-30:]))
        return "\n".join(parts)


@dataclass
class Failover:
    """What the scenario did and what the TURNS stream holds for it afterwards."""

    bus: Bus
    services: Services
    doomed: str
    accepted: list[str]
    after_kill: list[str]
    events: list[AnyTurnEvent]

    def of_turn(self, turn_id: str) -> list[AnyTurnEvent]:
        return [event for event in self.events if event.turn_id == turn_id]


@contextlib.contextmanager
def child(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process started by this test and always stopped by it (SIGTERM, then SIGKILL)."""
    with log.open("ab") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop_process(process, timeout_s=30)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cluster")


@pytest.fixture(scope="module")
def cluster(workdir: Path) -> Iterator[NatsCluster]:
    with running_cluster(workdir / "nats") as running:
        yield running


@pytest.fixture(scope="module")
def model_url(workdir: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "services.runtime.model_server", "--port", str(port)]
    with child(command, {**os.environ}, workdir / "model.log") as process:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / "model.log").read_text()[-3000:])
            time.sleep(0.2)
        yield url


@pytest.fixture(scope="module")
def services(cluster: NatsCluster, model_url: str, workdir: Path) -> Iterator[Services]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("TOKENBUS_")  # nothing of the developer's own setup
    }
    env |= {
        "TOKENBUS_NATS_URL": cluster.url,
        "TOKENBUS_JETSTREAM_REPLICAS": "3",
        "TOKENBUS_LOCAL_MODEL_URL": model_url,  # the packaged catalog runs on it
        "PYTHONUNBUFFERED": "1",
    }
    logs = workdir / "logs"
    logs.mkdir()
    with (
        child([sys.executable, "-m", "services.generator.main"], env, logs / "generator.log") as g,
        child([sys.executable, "-m", "services.usage.main"], env, logs / "usage.log") as u,
    ):
        yield Services(g, u, logs)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, services: Services
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(nats.errors.Error, TimeoutError):
            if await check():
                return
        assert services.running(), f"a service died while waiting for {what}\n{services.tail()}"
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s\n{services.tail()}")
        await asyncio.sleep(0.25)


async def publish_request(js: JetStreamContext, gateway_id: str, timeout: float = 60.0) -> str:
    """Publish until a PubAck says the stream has it, retrying as a client would.

    The turn id is the message id, so a retry of a publish that did land (its
    ack lost in the election) is dropped by JetStream as a duplicate.
    """
    request = ChatRequest(
        correlation_id=new_id(),
        gateway_id=gateway_id,
        conversation_id=new_id("c"),
        turn_id=new_id("t"),
        model=MODEL,
        messages=(ChatMessage(role="user", content="Count from one to one hundred in words."),),
        params=GenerationParams(max_tokens=MAX_TOKENS, temperature=0),
    )
    payload = request.model_dump_json().encode()
    deadline = time.monotonic() + timeout
    while True:
        try:
            await js.publish(
                CHAT_REQUEST_SUBJECT,
                payload,
                stream=REQUESTS_STREAM,
                timeout=2,
                headers={"Nats-Msg-Id": request.turn_id},
            )
            return request.turn_id
        except (nats.errors.Error, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


async def finished_turns(js: JetStreamContext, gateway_id: str) -> set[str]:
    """Turns of this gateway with a final event in the stream (from its subject index)."""
    info = await js.stream_info(TURNS_STREAM, subjects_filter=f"{PREFIX}.turn.{gateway_id}.>")
    return {
        subject.split(".")[5]
        for subject in info.state.subjects or {}
        if subject.endswith((".completed", ".failed"))
    }


async def stored_events(js: JetStreamContext, filter_subject: str) -> list[AnyTurnEvent]:
    """Every event the TURNS stream holds under `filter_subject`, in stream order."""
    info = await js.stream_info(TURNS_STREAM, subjects_filter=filter_subject)
    total = sum((info.state.subjects or {}).values())
    sub = await js.pull_subscribe(
        filter_subject,
        stream=TURNS_STREAM,
        config=ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30
        ),
    )
    events: list[AnyTurnEvent] = []
    try:
        while len(events) < total:
            msgs = await sub.fetch(batch=min(total - len(events), 256), timeout=10)
            events.extend(parse_turn_event(msg.data) for msg in msgs)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return events


async def usage_totals(js: JetStreamContext) -> dict[str, int]:
    """Each measure summed over every usage counter (this cluster meters only this test),
    read through the stream leader, not a replica that may lag."""
    info = await js.stream_info(USAGE_STREAM, subjects_filter=USAGE_SUBJECTS)
    totals = dict.fromkeys(MEASURES, 0)
    for subject in info.state.subjects or {}:
        measure = subject.rsplit(".", 1)[1]
        if measure in totals:
            latest = await js.get_last_msg(USAGE_STREAM, subject)
            totals[measure] += int(orjson.loads(latest.data or b'{"val": "0"}')["val"])
    return totals


@pytest.fixture(scope="module")
async def failover(cluster: NatsCluster, services: Services) -> AsyncIterator[Failover]:
    """Traffic, the kill of the leader, more traffic; then wait for everything to settle."""
    bus = await connect(cluster.url, name="cluster-test")
    js = bus.js
    started = time.monotonic()

    async def consumers_ready() -> bool:
        await js.consumer_info(REQUESTS_STREAM, "generator")
        await js.consumer_info(TURNS_STREAM, "usage")
        return True

    await eventually(consumers_ready, 90, "generator and usage consumers", services)
    # The services made the streams, replicated as the environment asked.
    for stream in (REQUESTS_STREAM, TURNS_STREAM, USAGE_STREAM, DEADLETTER_STREAM):
        assert (await js.stream_info(stream)).config.num_replicas == 3, stream

    # One node leads everything the turns go through: killing it fails all of it over.
    doomed = await stream_leader(js, REQUESTS_STREAM)
    for stream in (TURNS_STREAM, USAGE_STREAM):
        await move_leader(bus.nc, stream, doomed)
    await move_leader(bus.nc, REQUESTS_STREAM, doomed, consumer="generator")
    await move_leader(bus.nc, TURNS_STREAM, doomed, consumer="usage")

    gateway_id = new_id("gw")
    accepted = [await publish_request(js, gateway_id) for _ in range(BEFORE_KILL)]

    async def some_finished() -> bool:
        return bool(await finished_turns(js, gateway_id))

    await eventually(some_finished, 60, "a first finished turn", services)
    done_at_kill = len(await finished_turns(js, gateway_id))
    killed_at = time.monotonic()
    assert await kill_stream_leader(js, cluster, REQUESTS_STREAM) == doomed

    # Published while the cluster elects new leaders: each retried until acknowledged.
    after_kill = [await publish_request(js, gateway_id) for _ in range(AFTER_KILL)]
    accepted += after_kill
    published_after = time.monotonic() - killed_at

    async def all_finished() -> bool:
        return set(accepted) <= await finished_turns(js, gateway_id)

    await eventually(all_finished, 120, "a final event for every accepted request", services)

    async def new_leaders() -> bool:
        streams = (REQUESTS_STREAM, TURNS_STREAM, USAGE_STREAM)
        leaders = [await stream_leader(js, stream) for stream in streams]
        leaders.append(await consumer_leader(js, REQUESTS_STREAM, "generator"))
        leaders.append(await consumer_leader(js, TURNS_STREAM, "usage"))
        return doomed not in leaders

    await eventually(new_leaders, 30, "new leaders on the two live nodes", services)

    # Nothing left half-done: every request acked (no redelivery pending) and gone.
    async def queue_drained() -> bool:
        info = await js.consumer_info(REQUESTS_STREAM, "generator")
        stream = await js.stream_info(REQUESTS_STREAM)
        return info.num_ack_pending == 0 and info.num_pending == 0 and stream.state.messages == 0

    # Well within the generator's 30 s ack wait: a lost ack shows here, not as a redo later.
    await eventually(queue_drained, 20, "an empty request queue", services)

    events = await stored_events(js, gateway_turns_filter(gateway_id))
    print(
        f"\n{len(accepted)} requests; {done_at_kill} finished when {doomed} was killed; "
        f"{AFTER_KILL} more accepted within {published_after:.1f}s of the kill; "
        f"settled {time.monotonic() - started:.1f}s after the services were up"
    )
    yield Failover(bus, services, doomed, accepted, after_kill, events)
    await bus.close()


async def test_every_accepted_request_completes_exactly_once(failover: Failover) -> None:
    for turn_id in failover.accepted:
        finals = [e for e in failover.of_turn(turn_id) if isinstance(e, TurnCompleted | TurnFailed)]
        shown = [(e.type, e.attempt, e.seq) for e in finals]
        assert len(finals) == 1, f"{turn_id}: {shown}"  # none lost, none done twice
        (final,) = finals
        assert isinstance(final, TurnCompleted), final
        assert final.attempt == 1, "the request was redelivered: its first ack was lost"


async def test_the_services_carry_on_after_the_leader_dies(failover: Failover) -> None:
    assert failover.services.running(), failover.services.tail()
    served = {e.turn_id for e in failover.events if isinstance(e, TurnCompleted)}
    assert set(failover.after_kill) <= served
    js = failover.bus.js
    assert (await js.stream_info(DEADLETTER_STREAM)).state.messages == 0
    # And they still take new work, on the two nodes left.
    gateway_id = new_id("gw")
    turn_id = await publish_request(js, gateway_id)

    async def served_again() -> bool:
        return turn_id in await finished_turns(js, gateway_id)

    await eventually(served_again, 60, "a turn served after the failover", failover.services)


async def test_usage_counters_equal_the_stored_usage_events(failover: Failover) -> None:
    js = failover.bus.js
    expected: dict[str, int] = {}

    async def counters_match() -> bool:
        # Every usage event of this cluster, other tests' turns included.
        expected.update(dict.fromkeys(MEASURES, 0))
        for event in await stored_events(js, turn_kind_filter("usage")):
            assert isinstance(event, TurnUsage)
            expected["input_tokens"] += event.input_tokens
            expected["output_tokens"] += event.output_tokens
            expected["cached_input_tokens"] += event.cached_input_tokens
            expected["turns"] += 1
        return await usage_totals(js) == expected

    await eventually(counters_match, 60, "usage counters equal to the events", failover.services)
    assert expected["turns"] > 0


async def test_every_completed_turn_keeps_all_its_events(failover: Failover) -> None:
    gaps = {}
    for turn_id in failover.accepted:
        events = failover.of_turn(turn_id)
        final = max(e.seq for e in events if isinstance(e, TurnCompleted))
        seqs = sorted({e.seq for e in events if e.attempt == 1})
        usage = [e for e in events if isinstance(e, TurnUsage)]
        if seqs != list(range(1, final + 1)) or len(usage) != 1:
            gaps[turn_id] = f"stored seq {seqs} of 1..{final}, {len(usage)} usage"
    assert not gaps, gaps
