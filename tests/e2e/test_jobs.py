"""Background jobs on the whole stack: no client attached, status from the bus, webhooks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import nats
import pytest

from contracts.subjects import JOBS_BUCKET, REQUESTS_STREAM
from tests.support import Stack, extra_gateway

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m"
JOB = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Write two sentences about the sea."}],
    "max_tokens": 24,
}
ENDED = {"completed", "failed", "cancelled"}


async def wait_for_job(
    stack: Stack,
    job_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 60.0,
    url: str | None = None,
) -> dict[str, Any]:
    base_url = url or stack.gateway_url
    async with httpx.AsyncClient(base_url=base_url, headers=stack.auth, timeout=10) as http:
        deadline = time.monotonic() + timeout
        while True:
            response = await http.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if done(body) or time.monotonic() > deadline:
                return body
            await asyncio.sleep(0.2)


async def submit(stack: Stack, body: dict[str, Any], url: str | None = None) -> dict[str, Any]:
    base_url = url or stack.gateway_url
    async with httpx.AsyncClient(base_url=base_url, headers=stack.auth, timeout=10) as http:
        response = await http.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    return job


async def test_a_job_runs_with_no_client_attached_and_reports_its_result(stack: Stack) -> None:
    accepted = await submit(stack, JOB)
    assert accepted["object"] == "job"
    assert accepted["status"] == "queued"
    assert accepted["model"] == MODEL
    assert accepted["result"] is None
    assert accepted["webhook"] is None

    job = await wait_for_job(stack, accepted["id"], lambda j: j["status"] in ENDED)

    assert job["status"] == "completed", job
    assert job["error"] is None
    result = job["result"]
    assert result["object"] == "chat.completion"
    assert result["model"] == MODEL
    assert result["choices"][0]["message"]["content"]
    assert result["choices"][0]["finish_reason"] in {"stop", "length"}
    assert 0 < result["usage"]["completion_tokens"] <= 24
    assert result["usage"]["prompt_tokens"] > 0


async def test_an_unknown_job_is_404_job_not_found(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.auth) as http:
        answers = [await http.get(f"/v1/jobs/{job_id}") for job_id in ("nope", "a.b", "x" * 200)]
    for answer in answers:
        assert answer.status_code == 404
        error = answer.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "job_not_found"


BAD_BODIES = [
    pytest.param(b"{not json", 400, "invalid_json", id="malformed-json"),
    pytest.param(b'{"model": "smollm2-135m"}', 400, "invalid_value", id="missing-messages"),
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
    pytest.param(
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "x"}],'
        b' "webhook_url": "ftp://example.com/hook"}',
        400,
        "invalid_value",
        id="webhook-not-http",
    ),
    pytest.param(
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "x"}],'
        b' "webhook_url": "https://example.com/' + b"a" * 2100 + b'"}',
        400,
        "invalid_value",
        id="webhook-too-long",
    ),
    pytest.param(
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "x"}],'
        b' "webhook_url": "http://169.254.169.254/latest/meta-data/"}',
        400,
        "invalid_value",
        id="webhook-to-cloud-metadata",
    ),
    pytest.param(
        # Loopback beyond the one address this stack allows: the bus's monitor port.
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "x"}],'
        b' "webhook_url": "http://127.0.0.2:8222/jsz"}',
        400,
        "invalid_value",
        id="webhook-to-loopback",
    ),
    pytest.param(
        b'{"model": "smollm2-135m", "messages": [{"role": "user", "content": "x"}],'
        b' "webhook_url": "http://[::ffff:10.0.0.1]/"}',
        400,
        "invalid_value",
        id="webhook-to-private-network",
    ),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_BODIES)
async def test_bad_input_gets_a_clean_openai_error_and_queues_no_job(
    stack: Stack, body: bytes, status: int, code: str
) -> None:
    before = await _bus_writes(stack)
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=stack.auth) as http:
        response = await http.post(
            "/v1/jobs", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    if b"webhook_url" in body:
        assert error["param"] == "webhook_url"
    assert "Traceback" not in response.text
    assert await _bus_writes(stack) == before


class Receiver:
    """A real HTTP webhook receiver that refuses the first call with 500."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.calls.append((dict(self.headers.items()), body))
                self.send_response(500 if len(receiver.calls) == 1 else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=s3cret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()
        thread.join(timeout=5)


async def test_a_webhook_is_retried_until_the_receiver_takes_it(
    stack: Stack, receiver: Receiver
) -> None:
    accepted = await submit(stack, {**JOB, "webhook_url": receiver.url})
    assert accepted["webhook"] == {"status": "pending", "attempts": 0}

    job = await wait_for_job(stack, accepted["id"], lambda j: j["webhook"]["status"] != "pending")

    assert job["status"] == "completed"
    assert job["webhook"] == {"status": "delivered", "attempts": 2}
    assert len(receiver.calls) == 2
    for headers, raw in receiver.calls:
        assert headers["tokenbus-job-id"] == accepted["id"]
        posted = httpx.Response(200, content=raw).json()
        assert posted["id"] == accepted["id"]
        assert posted["status"] == "completed"
        assert posted["result"] == job["result"]
    assert "s3cret" not in stack.log("gateway")


async def test_a_job_finishes_after_the_gateway_that_accepted_it_is_gone(stack: Stack) -> None:
    with extra_gateway(stack) as accepting:
        accepted = await submit(stack, {**JOB, "max_tokens": 64}, url=accepting)
    # A new gateway process, which never saw the request, reads it from the bus.
    with extra_gateway(stack) as other:
        job = await wait_for_job(stack, accepted["id"], lambda j: j["status"] in ENDED, url=other)
    assert job["status"] == "completed"
    assert job["result"]["choices"][0]["message"]["content"]
    again = await wait_for_job(stack, accepted["id"], lambda j: True)
    assert again == job


async def _bus_writes(stack: Stack) -> tuple[int, int]:
    """Last sequence of the request stream and of the jobs bucket's stream."""
    nc = await nats.connect(stack.nats_url)
    try:
        js = nc.jetstream()
        requests = await js.stream_info(REQUESTS_STREAM)
        jobs = await js.stream_info(f"KV_{JOBS_BUCKET}")
        return int(requests.state.last_seq), int(jobs.state.last_seq)
    finally:
        await nc.close()
