"""Upstream faults through the real stack: retries, breaker, failover, clean errors.

The faulty model is served by a scripted local upstream speaking OpenAI's wire
format; its fallback is the real local model. Entries marked `reasoning` show that
path on the real local model and against OpenAI's refusals for reasoning models.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nats
import pytest

from contracts import ChatMessage, TurnCompleted, parse_turn_event
from contracts.subjects import TURNS_STREAM, turn_filter
from services.gateway.admission.gate import worst_case_prompt_tokens
from tests.faults.upstream import FaultyUpstream, running_upstream
from tests.support import Stack, issue_key, running_stack

pytestmark = pytest.mark.e2e

SECRET = "sk-live-SECRET-123 at internal-host-10.0.0.7"
UPSTREAM_TIMEOUT_S = 4.0
IDLE_S = 2.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    with running_upstream() as server:
        yield server


@pytest.fixture(scope="module")
def fault_stack(
    upstream: FaultyUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    state = Path(tmp_path_factory.mktemp("faults"))
    catalog = state / "catalog.toml"
    catalog.write_text(
        f"""
[models.flaky]
provider = "openai-compatible"
base_url = "{upstream.base_url}"
upstream_model = "flaky"
fallbacks = ["smollm2-135m"]

[models.sleepy]
provider = "openai-compatible"
base_url = "{upstream.base_url}"
upstream_model = "sleepy"
fallbacks = ["smollm2-135m"]

[models.stalls]
provider = "openai-compatible"
base_url = "{upstream.base_url}"
upstream_model = "stalls"

[models.stalls-anthropic]
provider = "anthropic"
base_url = "{upstream.base_url.removesuffix("/v1")}"
upstream_model = "stalls-anthropic"

[models.silent]
provider = "openai-compatible"
base_url = "{upstream.base_url}"
upstream_model = "silent"

[models."smollm2-135m"]
provider = "openai-compatible"
base_url = "${{TOKENBUS_LOCAL_MODEL_URL}}/v1"
upstream_model = "smollm2-135m"
context_window = 4096
max_output_tokens = 2048

[models.thinker]
provider = "openai-compatible"
base_url = "${{TOKENBUS_LOCAL_MODEL_URL}}/v1"
upstream_model = "smollm2-135m"
reasoning = true

[models.o-like]
provider = "openai-compatible"
base_url = "{upstream.base_url}"
upstream_model = "o-like"
reasoning = true
"""
    )
    env = {
        # A hung upstream is given up on after 4 s without a byte; a stream whose
        # text has begun, after 2 s of silence.
        "TOKENBUS_GENERATOR_UPSTREAM_TIMEOUT_S": str(UPSTREAM_TIMEOUT_S),
        "TOKENBUS_GENERATOR_STREAM_IDLE_TIMEOUT_S": str(IDLE_S),
        "TOKENBUS_GENERATOR_RETRY_ATTEMPTS": "2",
        "TOKENBUS_GENERATOR_BREAKER_MIN_CALLS": "3",
        "TOKENBUS_GENERATOR_BREAKER_COOLDOWN_S": "300",
    }
    with running_stack(state, "--catalog", str(catalog), env=env) as stack:
        yield stack


@pytest.fixture
async def http(fault_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=fault_stack.gateway_url, headers=fault_stack.auth, timeout=60
    ) as client:
        yield client


def ask(stream: bool = False, model: str = "flaky") -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 8,
        "stream": stream,
    }


async def final_event(stack: Stack, turn_id: str) -> TurnCompleted:
    nc = await nats.connect(stack.nats_url)
    try:
        sub = await nc.jetstream().subscribe(
            turn_filter(turn_id, turn_id),
            stream=TURNS_STREAM,
            ordered_consumer=True,
        )
        while True:
            event = parse_turn_event((await sub.next_msg(timeout=10)).data)
            if isinstance(event, TurnCompleted):
                return event
    finally:
        await nc.close()


async def test_an_upstream_that_hangs_before_the_first_token_is_failed_over(
    upstream: FaultyUpstream, http: httpx.AsyncClient
) -> None:
    # Its own catalog entry, so its failures do not open the breaker the others use.
    upstream.play({"kind": "hang"}, {"kind": "hang"})
    before = upstream.requests
    response = await http.post("/v1/chat/completions", json=ask(model="sleepy"))
    assert response.status_code == 200
    assert upstream.requests - before == 2  # tried, retried, then moved on
    assert response.json()["model"] == "smollm2-135m"
    assert response.json()["choices"][0]["message"]["content"]


async def test_a_429_with_retry_after_is_retried_and_succeeds(
    upstream: FaultyUpstream, http: httpx.AsyncClient
) -> None:
    upstream.play({"kind": "status", "status": 429, "retry_after": 1}, {"kind": "ok"})
    before = upstream.requests
    response = await http.post("/v1/chat/completions", json=ask())
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"].startswith("tok0 tok1")
    assert response.json()["model"] == "flaky"
    assert upstream.requests - before == 2


async def test_the_generator_logs_its_model_calls_but_never_the_upstreams_url(
    upstream: FaultyUpstream, http: httpx.AsyncClient, fault_stack: Stack
) -> None:
    response = await http.post("/v1/chat/completions", json=ask())
    assert response.status_code == 200
    log = fault_stack.log("generator")
    assert "model call finished" in log
    # The SDK's HTTP client logs each request with its URL at info, unless told not to.
    assert upstream.base_url.split("://", 1)[1] not in log
    assert "HTTP Request" not in log


async def test_a_400_is_not_retried_and_the_provider_text_never_reaches_the_client(
    upstream: FaultyUpstream, http: httpx.AsyncClient, fault_stack: Stack
) -> None:
    upstream.play({"kind": "status", "status": 400, "message": SECRET})
    before = upstream.requests
    response = await http.post("/v1/chat/completions", json=ask())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert upstream.requests - before == 1
    assert "SECRET" not in response.text
    assert "Traceback" not in response.text
    for service in ("gateway", "generator"):
        log = fault_stack.log(service)
        assert "SECRET" not in log
        assert "Traceback" not in log


async def test_a_turn_that_failed_before_any_token_gives_its_budget_back_at_once(
    upstream: FaultyUpstream, fault_stack: Stack
) -> None:
    # A budget with room for exactly one request's worst case.
    worst_case = worst_case_prompt_tokens((ChatMessage(role="user", content="hello"),)) + 8
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    _, key = issue_key(fault_stack, tenant, "ada", "--daily-tokens", str(worst_case))
    async with httpx.AsyncClient(
        base_url=fault_stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as http:
        upstream.play({"kind": "status", "status": 400, "message": "no"})
        failed = await http.post("/v1/chat/completions", json=ask())
        assert failed.status_code == 400
        # Its reservation is settled to the nothing it used as soon as the usage
        # service has seen the turn end, not minutes later when it would lapse.
        async with asyncio.timeout(20):
            answer = await http.post("/v1/chat/completions", json=ask())
            while answer.status_code == 429:
                assert answer.json()["error"]["code"] == "budget_exceeded"
                await asyncio.sleep(0.2)
                answer = await http.post("/v1/chat/completions", json=ask())
        assert answer.status_code == 200, answer.text
        usage = (await http.get("/v1/usage")).json()["total"]
    assert usage["turns"] >= 1


async def test_a_stream_reset_mid_way_ends_with_an_error_not_done(
    upstream: FaultyUpstream, http: httpx.AsyncClient
) -> None:
    upstream.play({"kind": "reset_after", "tokens": 3})
    async with http.stream("POST", "/v1/chat/completions", json=ask(stream=True)) as response:
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert "data: [DONE]" not in lines
    error = json.loads(lines[-1][len("data: ") :])["error"]
    assert error["code"] == "upstream_error"
    text = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in (json.loads(line[6:]) for line in lines[:-1])
        if c.get("choices")
    )
    assert text == "tok0 tok1 tok2 "


async def stream_lines(http: httpx.AsyncClient, body: dict[str, object]) -> list[tuple[float, str]]:
    """The stream's `data:` lines, each with when it arrived."""
    loop = asyncio.get_running_loop()
    async with (
        asyncio.timeout(30),
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        return [
            (loop.time(), line)
            async for line in response.aiter_lines()
            if line.startswith("data: ")
        ]


def streamed_text(lines: list[tuple[float, str]]) -> str:
    chunks = (json.loads(line[6:]) for _, line in lines if line.startswith("data: {"))
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )


@pytest.mark.parametrize("model", ["stalls", "stalls-anthropic"])
async def test_a_stream_that_stalls_mid_way_ends_with_timeout_within_the_idle_bound(
    upstream: FaultyUpstream, http: httpx.AsyncClient, model: str
) -> None:
    upstream.play({"kind": "hang_mid_stream", "tokens": 3})
    lines = await stream_lines(http, ask(stream=True, model=model))
    assert "data: [DONE]" not in [line for _, line in lines]
    error = json.loads(lines[-1][1][len("data: ") :])["error"]
    assert error["code"] == "timeout"
    assert streamed_text(lines[:-1]) == "tok0 tok1 tok2 "
    # Ended by the idle bound after the last token, not by the longer read timeout.
    silence = lines[-1][0] - lines[-2][0]
    assert IDLE_S - 0.5 < silence < UPSTREAM_TIMEOUT_S, silence


async def test_an_answer_that_stalls_mid_way_is_a_504_timeout(
    upstream: FaultyUpstream, http: httpx.AsyncClient
) -> None:
    upstream.play({"kind": "hang_mid_stream", "tokens": 2})
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await http.post("/v1/chat/completions", json=ask(model="stalls"))
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert loop.time() - started < UPSTREAM_TIMEOUT_S


async def test_an_upstream_that_hangs_after_its_headers_times_out(
    upstream: FaultyUpstream, http: httpx.AsyncClient
) -> None:
    # No fallback: the client sees what the tries ended with.
    upstream.play({"kind": "hang_after_headers"}, {"kind": "hang_after_headers"})
    before = upstream.requests
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await http.post("/v1/chat/completions", json=ask(model="silent"))
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert upstream.requests - before == 2  # retryable: tried twice, each bounded
    assert loop.time() - started < 2 * UPSTREAM_TIMEOUT_S + 3


async def test_a_malformed_chunk_ends_with_a_clean_error(
    upstream: FaultyUpstream, http: httpx.AsyncClient
) -> None:
    upstream.play({"kind": "malformed"}, {"kind": "malformed"}, {"kind": "malformed"})
    response = await http.post("/v1/chat/completions", json=ask())
    assert response.status_code in {502, 503}
    assert "not json" not in response.text


async def test_an_open_breaker_fails_over_to_the_fallback_without_trying_the_upstream(
    upstream: FaultyUpstream, http: httpx.AsyncClient, fault_stack: Stack
) -> None:
    upstream.play(*[{"kind": "status", "status": 503}] * 10)
    for _ in range(2):  # failures pile up until the breaker opens; each turn fails over
        response = await http.post("/v1/chat/completions", json=ask())
        assert response.status_code == 200
        assert response.json()["model"] == "smollm2-135m"
    tried = upstream.requests

    response = await http.post("/v1/chat/completions", json=ask())
    assert response.status_code == 200
    assert upstream.requests == tried  # the open breaker kept the turn off the upstream
    body = response.json()
    assert body["model"] == "smollm2-135m"
    assert body["choices"][0]["message"]["content"]
    turn_id = body["id"].removeprefix("chatcmpl-")
    assert (await final_event(fault_stack, turn_id)).model == "smollm2-135m"


async def test_a_reasoning_model_gets_its_output_limit_as_max_completion_tokens(
    http: httpx.AsyncClient,
) -> None:
    # llama.cpp takes max_completion_tokens as reasoning models do: the limit holds.
    body = {
        "model": "thinker",
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}],
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        chunks = [
            json.loads(line[6:])
            async for line in response.aiter_lines()
            if line.startswith("data: {")
        ]
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")]
    assert finish[-1] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 5


async def test_a_reasoning_model_is_not_sent_the_parameters_it_refuses(
    upstream: FaultyUpstream, http: httpx.AsyncClient
) -> None:
    upstream.play({"kind": "reasoning"})
    response = await http.post("/v1/chat/completions", json=ask(model="o-like") | {"max_tokens": 3})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "tok0 tok1 tok2 "
