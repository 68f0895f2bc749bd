"""The titler on a real nats-server with the real local model (llama.cpp serving SmolLM2-135M)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from contracts import ConversationTitled, DeadLetter, TitleRequest, TurnUsage, new_id, utc_now
from contracts.subjects import (
    DEADLETTER_STREAM,
    REQUESTS_STREAM,
    TITLE_REQUEST_SUBJECT,
    TITLES_BUCKET,
    TURNS_STREAM,
    deadletter_subject,
    title_turn_id,
    turn_event_subject,
)
from services.runtime.bus import Bus
from services.runtime.catalog import ModelEntry, parse_catalog
from services.runtime.embedded_nats import free_port
from services.titler.claims import TitleClaim
from services.titler.config import TitlerSettings
from services.titler.main import DURABLE, serve
from services.titler.prompt import first_prompt
from services.titler.titles import Title, fallback_title
from tests.support import stop_process

MODEL_ALIAS = "smollm2-135m"


@pytest.fixture(scope="module")
def model_url() -> Iterator[str]:
    """llama.cpp's server as its own process, as `tokenbus up` runs it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.runtime.model_server", "--port", str(port),
         "--alias", MODEL_ALIAS, "--parallel", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the model server did not start")
            time.sleep(0.2)
        # A first completion before any test: healthy is not yet warm, and a cold
        # first call on a busy machine may outlast the titler's bound.
        warm_up = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": MODEL_ALIAS, "messages": [{"role": "user", "content": "hi"}],
                  "max_tokens": 1},
            timeout=120,
        )  # fmt: skip
        warm_up.raise_for_status()
        yield url
    finally:
        stop_process(process, timeout_s=20)


def utility(
    base_url: str,
    max_output_tokens: int = 64,
    reasoning: bool = False,
    provider: str = "openai-compatible",
) -> ModelEntry:
    catalog = parse_catalog(
        f'[models."smollm2-135m-utility"]\nprovider = "{provider}"\n'
        f'base_url = "{base_url}"\nupstream_model = "{MODEL_ALIAS}"\n'
        f'max_output_tokens = {max_output_tokens}\nrole = "utility"\n'
        f"reasoning = {str(reasoning).lower()}\n"
    )
    entry = catalog.utility_model()
    assert entry is not None
    return entry


class Titlers:
    """Titler replicas run in-process through the real composition (`serve`)."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self.running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    def start(self, entry: ModelEntry | None, replicas: int = 1) -> None:
        # Generous bounds: these tests are about what a title costs, not about slow models.
        settings = TitlerSettings(nats_url=self.nats_url, timeout_s=60, claim_stale_s=150)
        for _ in range(replicas):
            stop = asyncio.Event()
            self.running.append((stop, asyncio.create_task(serve(settings, entry, {}, stop))))

    async def stop(self) -> None:
        for stop, _ in self.running:
            stop.set()
        for _, task in self.running:
            await task


@pytest.fixture
async def titlers(nats_url: str, bus: Bus) -> AsyncIterator[Titlers]:
    replicas = Titlers(nats_url)
    yield replicas
    await replicas.stop()


def title_request(message: str = "How do I reverse a list in Python?") -> TitleRequest:
    return TitleRequest(
        correlation_id=new_id(),
        tenant_id="acme",
        user_id="ada",
        gateway_id="gw-test",
        conversation_id=new_id("conv"),
        turn_id=new_id("turn"),
        user_message=message,
        assistant_message="Use slicing: items[::-1].",
    )


async def publish_request(bus: Bus, payload: bytes) -> None:
    # No Nats-Msg-Id: each publish is a separate message, as a retrying gateway could make.
    await bus.js.publish(TITLE_REQUEST_SUBJECT, payload, stream=REQUESTS_STREAM)


def title_subject(request: TitleRequest) -> str:
    return turn_event_subject(request.gateway_id, request.conversation_id, request.turn_id, "title")


def usage_subject(request: TitleRequest) -> str:
    return turn_event_subject(
        request.gateway_id, request.conversation_id, title_turn_id(request.turn_id), "usage"
    )


async def stored(bus: Bus, stream: str, subject: str) -> list[bytes]:
    """Every message the stream holds on `subject`."""
    sub = await bus.js.subscribe(subject, stream=stream, ordered_consumer=True)
    found = []
    try:
        while True:
            found.append((await sub.next_msg(timeout=0.5)).data)
    except TimeoutError:
        return found
    finally:
        await sub.unsubscribe()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 150.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def title_published(bus: Bus, request: TitleRequest) -> ConversationTitled:
    async def present() -> bool:
        return bool(await stored(bus, TURNS_STREAM, title_subject(request)))

    await eventually(present)
    [data] = await stored(bus, TURNS_STREAM, title_subject(request))
    return ConversationTitled.model_validate_json(data)


async def all_requests_handled(bus: Bus) -> None:
    async def idle() -> bool:
        info = await bus.js.consumer_info(REQUESTS_STREAM, DURABLE)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(idle)


async def usage_events(bus: Bus, request: TitleRequest) -> list[TurnUsage]:
    return [
        TurnUsage.model_validate_json(d)
        for d in await stored(bus, TURNS_STREAM, usage_subject(request))
    ]


async def predicted_tokens(model_url: str) -> int:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{model_url}/metrics")).text
    found = re.search(r"^llamacpp:tokens_predicted_total (\d+(?:\.\d+)?)", text, re.M)
    assert found is not None
    return int(float(found.group(1)))


async def test_a_title_request_yields_one_valid_title_and_exactly_metered_usage(
    bus: Bus, titlers: Titlers, model_url: str
) -> None:
    request = title_request()
    predicted_before = await predicted_tokens(model_url)
    titlers.start(utility(f"{model_url}/v1"))
    await publish_request(bus, request.model_dump_json().encode())

    event = await title_published(bus, request)
    await all_requests_handled(bus)
    assert Title(text=event.title).text == event.title
    assert event.model == "smollm2-135m-utility"
    assert (event.tenant_id, event.conversation_id, event.turn_id) == (
        "acme", request.conversation_id, request.turn_id,
    )  # fmt: skip
    assert event.correlation_id == request.correlation_id

    usage = await usage_events(bus, request)
    # One call, or two when the first answer was refused; the tiny model does both.
    assert [u.seq for u in usage] == list(range(1, len(usage) + 1))
    assert 1 <= len(usage) <= 2
    assert all(u.purpose == "title" and u.attempt == 1 and not u.estimated for u in usage)
    assert all(u.turn_id == title_turn_id(request.turn_id) for u in usage)
    assert all((u.tenant_id, u.user_id) == ("acme", "ada") for u in usage)
    assert all((u.model, u.provider_model) == ("smollm2-135m-utility", MODEL_ALIAS) for u in usage)
    if event.source == "fallback":
        assert len(usage) == 2
        assert event.title == fallback_title(request.user_message)
    # Output tokens: exactly what the model server generated for these calls.
    assert sum(u.output_tokens for u in usage) == await predicted_tokens(model_url) - (
        predicted_before
    )
    # Input tokens: exactly what the provider counts for the first prompt.
    client = AsyncOpenAI(base_url=f"{model_url}/v1", api_key="none")
    prompt = first_prompt(request.user_message)
    messages: list[Any] = [{"role": "system", "content": prompt.system}]
    messages += [{"role": m.role, "content": m.content} for m in prompt.messages]
    check = await client.chat.completions.create(
        model=MODEL_ALIAS,
        messages=messages,
        max_tokens=1,
    )
    assert check.usage is not None
    assert usage[0].input_tokens == check.usage.prompt_tokens
    await client.close()


async def test_the_same_request_twice_on_two_replicas_makes_one_title_and_one_set_of_usage(
    bus: Bus, titlers: Titlers, model_url: str
) -> None:
    request = title_request("Tell me about the sea.")
    payload = request.model_dump_json().encode()
    titlers.start(utility(f"{model_url}/v1"), replicas=2)
    await publish_request(bus, payload)
    await publish_request(bus, payload)

    event = await title_published(bus, request)
    await all_requests_handled(bus)
    await publish_request(bus, payload)  # and once more, long after it was named
    await all_requests_handled(bus)

    assert [ConversationTitled.model_validate_json(d) for d in await stored(
        bus, TURNS_STREAM, title_subject(request)
    )] == [event]  # fmt: skip
    usage = await usage_events(bus, request)
    assert 1 <= len(usage) <= 2
    assert [(u.attempt, u.seq) for u in usage] == [(1, n) for n in range(1, len(usage) + 1)]
    claim = TitleClaim.model_validate_json(
        (await (await bus.js.key_value(TITLES_BUCKET)).get(request.conversation_id)).value or b""
    )
    assert claim.state == "published"
    assert claim.event == event


async def test_a_claim_left_by_a_crashed_replica_is_taken_over_and_named_once(
    bus: Bus, titlers: Titlers, model_url: str
) -> None:
    request = title_request("What should I cook tonight?")
    kv = await bus.js.key_value(TITLES_BUCKET)
    abandoned = TitleClaim(
        state="pending", attempt=1, owner_sequence=0, claimed_at=utc_now() - timedelta(minutes=5)
    )
    await kv.create(request.conversation_id, abandoned.model_dump_json().encode())
    titlers.start(utility(f"{model_url}/v1"))
    await publish_request(bus, request.model_dump_json().encode())

    await title_published(bus, request)
    await all_requests_handled(bus)
    usage = await usage_events(bus, request)
    assert usage
    assert {u.attempt for u in usage} == {2}


async def test_a_reasoning_utility_model_is_asked_in_the_parameters_reasoning_models_take(
    bus: Bus, titlers: Titlers, model_url: str
) -> None:
    # llama.cpp takes max_completion_tokens as OpenAI's reasoning models do; the call
    # must be accepted, bounded by the entry's limit, and metered like any other.
    request = title_request("Plan a three-day trip to Lisbon.")
    predicted_before = await predicted_tokens(model_url)
    titlers.start(utility(f"{model_url}/v1", max_output_tokens=40, reasoning=True))
    await publish_request(bus, request.model_dump_json().encode())

    event = await title_published(bus, request)
    await all_requests_handled(bus)
    usage = await usage_events(bus, request)
    assert 1 <= len(usage) <= 2, "the model call was refused"
    assert all(u.output_tokens <= 40 for u in usage)  # sampled: an empty answer can happen
    assert sum(u.output_tokens for u in usage) == await predicted_tokens(model_url) - (
        predicted_before
    )
    assert Title(text=event.title).text == event.title


async def test_a_utility_model_behind_the_anthropic_sdk_titles_and_is_metered_exactly(
    bus: Bus, titlers: Titlers, model_url: str
) -> None:
    # llama.cpp serves Anthropic's Messages API too: the other SDK path, for real.
    request = title_request("How do I make sourdough bread?")
    predicted_before = await predicted_tokens(model_url)
    titlers.start(utility(model_url, provider="anthropic"))
    await publish_request(bus, request.model_dump_json().encode())

    event = await title_published(bus, request)
    await all_requests_handled(bus)
    usage = await usage_events(bus, request)
    assert 1 <= len(usage) <= 2, "the model call was refused"
    assert all(u.purpose == "title" and u.input_tokens > 0 for u in usage)
    assert sum(u.output_tokens for u in usage) == await predicted_tokens(model_url) - (
        predicted_before
    )
    assert Title(text=event.title).text == event.title


async def test_an_unreachable_provider_gives_a_fallback_title_and_no_usage(
    bus: Bus, titlers: Titlers
) -> None:
    request = title_request("# Why does my **pod** get `OOMKilled`?\nIt restarts every hour.")
    titlers.start(utility(f"http://127.0.0.1:{free_port()}/v1"))  # nothing listens there
    await publish_request(bus, request.model_dump_json().encode())

    event = await title_published(bus, request)
    await all_requests_handled(bus)
    assert event.source == "fallback"
    assert event.title == "Why does my pod get OOMKilled?"
    assert await usage_events(bus, request) == []


async def test_a_malformed_title_request_is_dead_lettered_and_the_titler_carries_on(
    bus: Bus, titlers: Titlers
) -> None:
    marker = new_id("bad")
    titlers.start(None)  # fallback titles only: no model needed to show the error policy
    await publish_request(bus, f'{{"type": "title.request", "user_message": "{marker}"}}'.encode())
    request = title_request("hello there")
    await publish_request(bus, request.model_dump_json().encode())

    assert (await title_published(bus, request)).title == "Hello there"
    await all_requests_handled(bus)
    letters = [
        DeadLetter.model_validate_json(d)
        for d in await stored(bus, DEADLETTER_STREAM, deadletter_subject(DURABLE))
    ]
    [letter] = [x for x in letters if marker in x.payload]
    assert letter.original_subject == TITLE_REQUEST_SUBJECT
    assert "contract violation" in letter.reason
    assert "conversation_id" in letter.reason
