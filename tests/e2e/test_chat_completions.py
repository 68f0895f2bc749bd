"""The whole stack as `tokenbus up` runs it: nats-server, local model, every service.

Clients are the official openai SDK and plain httpx, over real HTTP.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import nats
import openai
import pytest
from nats.js.api import DeliverPolicy

from contracts import ChatMessage, ChatRequest, TurnDelta, TurnUsage, new_id, parse_turn_event
from contracts.subjects import (
    CHAT_REQUEST_SUBJECT,
    DEADLETTER_STREAM,
    TURN_SUBJECTS,
    TURNS_STREAM,
    deadletter_subject,
)
from tests.support import Stack, extra_gateway, requests_published

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m"
PROMPT = [{"role": "user", "content": "Write two sentences about the sea."}]


@pytest.fixture
def client(stack: Stack) -> openai.AsyncOpenAI:
    return stack.openai()


async def test_streams_a_completion_token_by_token_through_the_openai_sdk(
    client: openai.AsyncOpenAI,
) -> None:
    arrivals: list[float] = []
    parts: list[str] = []
    usage = None
    finish = None
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=PROMPT,  # type: ignore[arg-type]
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
                arrivals.append(time.monotonic())
            finish = choice.finish_reason or finish

    assert finish in {"stop", "length"}
    assert usage is not None
    assert usage.completion_tokens >= len(parts) > 5
    assert usage.prompt_tokens > 0
    # Relayed as made, not buffered: the tokens arrive spread over the generation.
    assert arrivals[-1] - arrivals[0] > 0.05
    assert len({round(t, 3) for t in arrivals}) > len(arrivals) // 2


async def test_answers_a_non_streaming_completion_with_usage(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model=MODEL,
        messages=PROMPT,  # type: ignore[arg-type]
        max_tokens=16,
    )
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason in {"stop", "length"}
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 16


async def test_lists_models(client: openai.AsyncOpenAI) -> None:
    assert [m.id async for m in client.models.list()] == [MODEL, f"{MODEL}-anthropic"]


async def test_the_client_sees_exactly_the_events_that_travelled_over_jetstream(
    stack: Stack, client: openai.AsyncOpenAI
) -> None:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=PROMPT,  # type: ignore[arg-type]
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    client_text = ""
    client_usage = None
    completion_id = ""
    async for chunk in stream:
        completion_id = chunk.id
        client_usage = chunk.usage or client_usage
        for choice in chunk.choices:
            client_text += choice.delta.content or ""
    turn_id = completion_id.removeprefix("chatcmpl-")

    # An independent reader replays the turn from the stream afterwards.
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            TURN_SUBJECTS.replace(">", f"*.{turn_id}.{turn_id}.*"),
            stream=TURNS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
        events = []
        while not events or events[-1].type not in {"turn.completed", "turn.failed"}:
            events.append(parse_turn_event((await sub.next_msg(timeout=5)).data))
        await sub.unsubscribe()
    finally:
        await nc.close()

    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    bus_text = "".join(e.text for e in events if isinstance(e, TurnDelta))
    assert bus_text == client_text
    bus_usage = next(e for e in events if isinstance(e, TurnUsage))
    assert client_usage is not None
    assert (bus_usage.input_tokens, bus_usage.output_tokens) == (
        client_usage.prompt_tokens,
        client_usage.completion_tokens,
    )
    assert events[-1].type == "turn.completed"


async def test_concurrent_streams_each_get_their_own_complete_answer(
    client: openai.AsyncOpenAI,
) -> None:
    async def one(n: int) -> tuple[str, int]:
        completion = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Count from {n} to {n + 5}."}],
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, tokens = "", 0
        async for chunk in completion:
            if chunk.usage:
                tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                text += choice.delta.content or ""
        return text, tokens

    results = await asyncio.gather(*(one(n) for n in range(8)))
    for text, tokens in results:
        assert text
        assert tokens > 0


async def test_a_malformed_request_on_the_bus_is_dead_lettered_and_the_generator_keeps_going(
    stack: Stack, client: openai.AsyncOpenAI
) -> None:
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        marker = new_id()
        bad = ChatRequest(
            correlation_id=marker,
            gateway_id="gw",
            conversation_id="c",
            turn_id=marker,
            model=MODEL,
            messages=(ChatMessage(role="user", content="hi"),),
        ).model_dump(mode="json")
        bad["messages"] = "not a list"  # e.g. another team's producer with a bug
        await js.publish(CHAT_REQUEST_SUBJECT, httpx.Response(200, json=bad).content)

        sub = await js.subscribe(
            deadletter_subject("generator"), stream=DEADLETTER_STREAM, ordered_consumer=True
        )
        reasons = []
        async with asyncio.timeout(15):
            while not any(marker in r for r in reasons):
                msg = await sub.next_msg(timeout=10)
                reasons.append(msg.data.decode())
        await sub.unsubscribe()
        letter = next(r for r in reasons if marker in r)
        assert "contract violation" in letter
        assert "messages" in letter
    finally:
        await nc.close()

    completion = await client.chat.completions.create(
        model=MODEL,
        messages=PROMPT,  # type: ignore[arg-type]
        max_tokens=4,
    )
    assert completion.choices[0].message.content


BAD_BODIES = [
    pytest.param(b"{not json", 400, "invalid_json", id="malformed-json"),
    pytest.param(b'{"model": "smollm2-135m"}', 400, "invalid_value", id="missing-messages"),
    pytest.param(b'{"model": "smollm2-135m", "messages": []}', 400, "invalid_value", id="empty"),
    pytest.param(
        b'{"model": "smollm2-135m", "messages": [{"role": "wizard", "content": "x"}]}',
        400,
        "invalid_value",
        id="unknown-role",
    ),
    pytest.param(
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": 42}]}',
        400,
        "invalid_value",
        id="non-string-content",
    ),
    pytest.param(
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "x"}],'
        b' "max_tokens": 0}',
        400,
        "invalid_value",
        id="max-tokens-zero",
    ),
    pytest.param(
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "x"}],'
        b' "max_tokens": 10000000}',
        400,
        "invalid_value",
        id="max-tokens-too-large",
    ),
    pytest.param(
        b'{"model": "gpt-99", "messages": [{"role": "user", "content": "x"}]}',
        404,
        "model_not_found",
        id="unknown-model",
    ),
    pytest.param(b"[1, 2, 3]", 400, "invalid_value", id="not-an-object"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
async def test_bad_input_gets_a_clean_openai_error_and_publishes_nothing(
    stack: Stack, body: bytes, status: int, code: str
) -> None:
    before = await requests_published(stack)
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.auth) as http:
        response = await http.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert "Traceback" not in response.text
    assert await requests_published(stack) == before


async def test_a_body_over_the_limit_is_refused_with_413(stack: Stack) -> None:
    before = await requests_published(stack)
    huge = b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "'
    huge += b"x" * 11_000_000 + b'"}]}'
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.auth) as http:
        response = await http.post(
            "/v1/chat/completions", content=huge, headers={"content-type": "application/json"}
        )
        chunked = await http.post(
            "/v1/chat/completions",
            content=_chunks(huge),
            headers={"content-type": "application/json"},
        )
    for answer in (response, chunked):
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "body_too_large"
    assert await requests_published(stack) == before


async def test_health_and_readiness(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.auth) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["bus_connected"] is True


async def _chunks(data: bytes):  # type: ignore[no-untyped-def]
    for start in range(0, len(data), 65536):
        yield data[start : start + 65536]


async def test_heartbeats_keep_the_stream_alive_while_the_first_token_is_slow(
    stack: Stack,
) -> None:
    long_prompt = "Summarise this text. " + "The tide comes in and goes out again. " * 250
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": long_prompt}],
        "max_tokens": 5,
        "stream": True,
    }
    with extra_gateway(stack, heartbeat_s="0.02") as url:
        async with (
            httpx.AsyncClient(base_url=url, headers=stack.auth, timeout=60) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            lines = [line async for line in response.aiter_lines() if line]
    first_token = next(
        i for i, line in enumerate(lines) if '"content":"' in line and "role" not in line
    )
    assert ": keep-alive" in lines[:first_token]
    assert lines[-1] == "data: [DONE]"


@pytest.mark.parametrize("model", ["smollm2-135m", "smollm2-135m-anthropic"])
async def test_both_provider_sdks_stream_from_the_local_model_with_exact_usage(
    stack: Stack, client: openai.AsyncOpenAI, model: str
) -> None:
    """One catalog entry goes through the openai SDK, the other through the anthropic SDK."""
    stream = await client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "Name a colour."},
        ],
        max_tokens=12,
        # Sampling knobs too: each SDK must carry them to the wire in its own way.
        temperature=0.5,
        top_p=0.9,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, turn_id = "", None, ""
    async for chunk in stream:
        turn_id = chunk.id.removeprefix("chatcmpl-")
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
    assert text
    assert usage is not None
    assert 0 < usage.completion_tokens <= 12
    assert usage.prompt_tokens > 5

    nc = await nats.connect(stack.nats_url)
    try:
        sub = await nc.jetstream().subscribe(
            TURN_SUBJECTS.replace(">", f"*.{turn_id}.{turn_id}.usage"),
            stream=TURNS_STREAM,
            ordered_consumer=True,
        )
        metered = TurnUsage.model_validate_json((await sub.next_msg(timeout=5)).data)
    finally:
        await nc.close()
    assert metered.estimated is False  # the provider's own count, not ours
    assert metered.output_tokens == usage.completion_tokens
