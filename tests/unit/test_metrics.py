"""Metric helpers: stream timing, route-template labels, breaker states, the /metrics server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest

from services.gateway.http.request_metrics import HttpMetricsMiddleware
from services.generator.breaker import BreakerConfig, CircuitBreaker
from services.generator.metrics import BreakerStates
from services.runtime.embedded_nats import free_port
from services.runtime.metrics import TokenTimer
from services.runtime.metrics_server import MetricsServer


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_time_to_first_token_is_reported_once_and_pace_spans_first_to_end() -> None:
    clock = Clock()
    timer = TokenTimer(clock)
    clock.now = 100.5
    assert timer.token() == pytest.approx(0.5)
    clock.now = 100.7
    assert timer.token() is None
    clock.now = 101.5
    timer.finish()
    # 11 tokens: 10 gaps over the second between the first token and the end.
    assert timer.per_output_token(11) == pytest.approx(0.1)


@pytest.mark.parametrize("output_tokens", [None, 0, 1])
def test_no_pace_without_two_tokens(output_tokens: int | None) -> None:
    timer = TokenTimer(Clock())
    timer.token()
    timer.finish()
    assert timer.per_output_token(output_tokens) is None


def test_no_pace_for_a_stream_that_sent_no_text() -> None:
    timer = TokenTimer(Clock())
    timer.finish()
    assert timer.per_output_token(50) is None


def small_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(HttpMetricsMiddleware)

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @app.get("/live")
    async def live() -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            # The stream is open while this runs: the gauge counts it.
            yield f"data: {sample('tokenbus_gateway_active_streams', route='/live')}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


async def test_requests_are_counted_by_route_template_never_by_raw_path() -> None:
    app = small_app()
    before = sample(
        "tokenbus_http_requests_total", method="GET", route="/things/{thing_id}", status="200"
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        for thing in ("conv_0123456789abcdef", "conv_fedcba9876543210"):
            assert (await client.get(f"/things/{thing}")).status_code == 200
        assert (await client.get("/no/such/path/conv_0123")).status_code == 404
    after = sample(
        "tokenbus_http_requests_total", method="GET", route="/things/{thing_id}", status="200"
    )
    assert after - before == 2
    assert sample("tokenbus_http_requests_total", method="GET", route="unmatched", status="404")
    exposed = generate_latest(REGISTRY).decode()
    assert "conv_0123" not in exposed
    assert "conv_fedc" not in exposed


async def test_an_open_event_stream_is_an_active_stream_until_it_ends() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=small_app()), base_url="http://t"
    ) as client:
        response = await client.get("/live")
    assert response.text.startswith("data: ")
    during = float(response.text.removeprefix("data: ").strip())
    assert during >= 1
    assert sample("tokenbus_gateway_active_streams", route="/live") == during - 1


def test_breaker_states_show_one_state_per_model() -> None:
    clock = Clock()
    config = BreakerConfig(min_calls=1, failure_rate=0.5, cooldown_s=10)
    failing = CircuitBreaker("failing", config, clock=clock)
    failing.record(False)
    states = BreakerStates()
    states.watch({"healthy": CircuitBreaker("healthy", config, clock=clock), "failing": failing})
    registry = CollectorRegistry()
    registry.register(states)
    value = registry.get_sample_value
    assert value("tokenbus_generator_breaker_state", {"model": "failing", "state": "open"}) == 1
    assert value("tokenbus_generator_breaker_state", {"model": "failing", "state": "closed"}) == 0
    assert value("tokenbus_generator_breaker_state", {"model": "healthy", "state": "closed"}) == 1
    clock.now += 10  # cooldown over: read at scrape time, not cached
    assert (
        value("tokenbus_generator_breaker_state", {"model": "failing", "state": "half_open"}) == 1
    )


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("probe_total", "a probe", registry=registry).inc(3)
    return registry


async def test_metrics_server_answers_prometheus_text_and_404_elsewhere(
    registry: CollectorRegistry,
) -> None:
    port = free_port()
    server = await MetricsServer.start("127.0.0.1", port, registry)
    try:
        assert server.port == port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            scraped = await client.get("/metrics")
            missing = await client.get("/other")
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain")
        assert "probe_total 3.0" in scraped.text
        assert missing.status_code == 404
    finally:
        await server.stop()


async def test_metrics_server_is_off_on_port_zero(registry: CollectorRegistry) -> None:
    server = await MetricsServer.start("127.0.0.1", 0, registry)
    assert server.port is None
    await server.stop()


async def test_a_silent_client_does_not_hold_the_metrics_server(
    registry: CollectorRegistry,
) -> None:
    port = free_port()
    server = await MetricsServer.start("127.0.0.1", port, registry)
    try:
        _, silent = await asyncio.open_connection("127.0.0.1", port)
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        silent.close()
    finally:
        await server.stop()


async def test_a_taken_port_leaves_the_service_running_without_metrics(
    registry: CollectorRegistry,
) -> None:
    port = free_port()
    first = await MetricsServer.start("127.0.0.1", port, registry)
    second = await MetricsServer.start("127.0.0.1", port, registry)
    try:
        assert first.port == port
        assert second.port is None
    finally:
        await first.stop()
        await second.stop()
