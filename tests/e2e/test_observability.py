"""Metrics and logs of the running stack: scraped and read as an operator would."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts import new_id
from tests.support import Stack

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m"
# A label value that looks like one of our ids (32 hex digits, optionally prefixed).
ID_LIKE = re.compile(r"[0-9a-f]{32}")


def metrics_urls(stack: Stack) -> dict[str, str]:
    urls: dict[str, str] = json.loads((stack.state_dir / "metrics.json").read_text())
    return urls


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)  # no API key: public like /healthz
    assert response.status_code == 200, url
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def complete(
    stack: Stack, content: str, request_id: str, stream: bool = False
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        response = await http.post(
            "/v1/chat/completions",
            headers={**stack.auth, "X-Request-ID": request_id},
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": content}],
                "max_tokens": 12,
                "stream": stream,
            },
        )
    assert response.status_code == 200, response.text
    return response


async def test_counters_move_on_the_gateway_and_the_generator_after_a_request(
    stack: Stack,
) -> None:
    urls = metrics_urls(stack)
    assert set(urls) >= {"gateway", "generator", "titler", "usage"}
    gateway_before = await scrape(urls["gateway"])
    generator_before = await scrape(urls["generator"])

    request_id = f"metrics-{new_id()}"
    response = await complete(stack, "Name a colour.", request_id)
    assert response.headers["x-request-id"] == request_id

    gateway = await scrape(urls["gateway"])
    route = {"method": "POST", "route": "/v1/chat/completions", "status": "200"}
    assert (
        value(gateway, "tokenbus_http_requests_total", **route)
        - value(gateway_before, "tokenbus_http_requests_total", **route)
        == 1
    )
    ttft = "tokenbus_gateway_time_to_first_token_seconds_count"
    assert value(gateway, ttft, model=MODEL) > value(gateway_before, ttft, model=MODEL)
    assert value(gateway, "tokenbus_gateway_active_streams", route="/v1/chat/completions") == 0

    generator = await scrape(urls["generator"])
    for name, labels in [
        ("tokenbus_generator_tokens_total", {"model": MODEL, "type": "output"}),
        ("tokenbus_generator_tokens_total", {"model": MODEL, "type": "input"}),
        ("tokenbus_generator_time_to_first_token_seconds_count", {"model": MODEL}),
        ("tokenbus_consumer_messages_total", {"consumer": "generator", "outcome": "handled"}),
    ]:
        assert value(generator, name, **labels) > value(generator_before, name, **labels), name
    assert value(generator, "tokenbus_generator_breaker_state", model=MODEL, state="closed") == 1

    # The lag gauge is refreshed every few seconds from the consumer's info.
    lag = ("tokenbus_consumer_pending_messages", frozenset(
        {"stream": "TOKENBUS_REQUESTS", "consumer": "generator"}.items()))  # fmt: skip
    for _ in range(40):
        if lag in generator:
            break
        await asyncio.sleep(0.25)
        generator = await scrape(urls["generator"])
    assert lag in generator

    for name in ("titler", "usage"):
        await scrape(urls[name])


async def test_no_metric_label_carries_an_id(stack: Stack) -> None:
    request_id = f"labels-{new_id()}"
    await complete(stack, "Say hi.", request_id, stream=True)
    for name, url in metrics_urls(stack).items():
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(url)).text
        assert request_id not in text, name
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                for label, label_value in sample.labels.items():
                    assert not ID_LIKE.search(label_value), (name, sample.name, label, label_value)


async def test_logs_are_json_lines_with_the_request_id_and_without_prompt_or_key(
    stack: Stack,
) -> None:
    prompt = f"Describe the purple walrus {new_id()[:12]} in one word."
    request_id = f"logs-{new_id()}"
    response = await complete(stack, prompt, request_id)
    assert response.headers["x-request-id"] == request_id
    await asyncio.sleep(1.0)  # the usage service meters the turn after the answer

    logs = {path.stem: path.read_text() for path in (stack.state_dir / "logs").glob("*.log")}
    assert {"gateway", "generator", "usage"} <= set(logs)
    for name, text in logs.items():
        assert prompt not in text, name
        assert "purple walrus" not in text, name
        assert stack.api_key not in text, name

    tagged: dict[str, list[dict[str, object]]] = {}
    for name in ("gateway", "generator", "titler", "usage"):
        for line in logs.get(name, "").splitlines():
            entry = orjson.loads(line)  # every line of our services is one JSON object
            assert isinstance(entry, dict)
            assert {"ts", "level", "service", "msg"} <= set(entry)
            if entry.get("correlation_id") == request_id:
                tagged.setdefault(name, []).append(entry)
    # The gateway's access line and the generator's model-call line: one id across processes.
    assert any(e["msg"] == "request" and e["status"] == 200 for e in tagged["gateway"])
    assert any(e["msg"] == "model call finished" for e in tagged["generator"])


async def test_a_request_id_is_made_when_missing_and_returned_on_errors(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        made = await http.get("/v1/models", headers=stack.auth)
        unauthorised = await http.get("/v1/models", headers={"X-Request-ID": "mine-1"})
        malformed = await http.get("/healthz", headers={"X-Request-ID": "not valid!"})
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", made.headers["x-request-id"])
    assert unauthorised.status_code == 401
    assert unauthorised.headers["x-request-id"] == "mine-1"
    assert malformed.status_code == 200
    assert malformed.headers["x-request-id"] != "not valid!"
