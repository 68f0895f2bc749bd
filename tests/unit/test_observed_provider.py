"""The provider call's GenAI span and metrics, with a scripted provider at the seam."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY

from contracts import ChatMessage, ChatRequest, GenerationParams
from services.generator.errors import ProviderError
from services.generator.observed import ObservedProvider
from services.generator.ports import StreamEnd, TextChunk
from services.runtime.catalog import parse_catalog

CATALOG = parse_catalog(
    """
[models.observed-model]
provider = "openai-compatible"
base_url = "http://upstream/v1"
upstream_model = "upstream-name"
"""
)
PROMPT = "a secret prompt about zebras"


class Scripted:
    def __init__(self, *items: TextChunk | StreamEnd | ProviderError) -> None:
        self.items = items

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        return self._play()

    async def _play(self) -> AsyncIterator[TextChunk | StreamEnd]:
        for item in self.items:
            if isinstance(item, ProviderError):
                raise item
            yield item


def a_request(model: str = "observed-model") -> ChatRequest:
    return ChatRequest(
        correlation_id="corr",
        gateway_id="gw",
        conversation_id="conv",
        turn_id="turn",
        model=model,
        messages=(ChatMessage(role="user", content=PROMPT),),
        params=GenerationParams(max_tokens=20, temperature=0.5),
    )


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def observed(
    spans: InMemorySpanExporter, *items: TextChunk | StreamEnd | ProviderError
) -> ObservedProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return ObservedProvider(Scripted(*items), CATALOG, tracer=provider.get_tracer("test"))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_finished_stream_is_one_client_span_with_genai_attributes(
    spans: InMemorySpanExporter,
) -> None:
    provider = observed(
        spans, TextChunk("Zebras "), TextChunk("run."), StreamEnd("stop", "upstream-name-v2", 12, 3)
    )
    items = [item async for item in provider.stream(a_request())]
    assert len(items) == 3
    (span,) = spans.get_finished_spans()
    assert span.kind is SpanKind.CLIENT
    assert span.name == "chat observed-model"
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai-compatible"
    assert attributes["gen_ai.request.model"] == "upstream-name"
    assert attributes["gen_ai.response.model"] == "upstream-name-v2"
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == 3
    assert tuple(attributes["gen_ai.response.finish_reasons"]) == ("stop",)  # type: ignore[arg-type]
    assert attributes["gen_ai.request.max_tokens"] == 20
    # Counts and names only: the text of the prompt and the answer stay out of traces.
    assert not any("zebra" in str(value).lower() for value in attributes.values())


async def test_tokens_and_timings_are_counted_by_catalog_model(
    spans: InMemorySpanExporter,
) -> None:
    tokens_before = sample("tokenbus_generator_tokens_total", model="observed-model", type="output")
    ttft_before = sample(
        "tokenbus_generator_time_to_first_token_seconds_count", model="observed-model"
    )
    provider = observed(spans, TextChunk("a"), TextChunk("b"), StreamEnd("stop", "x", 5, 7))
    _ = [item async for item in provider.stream(a_request())]
    assert (
        sample("tokenbus_generator_tokens_total", model="observed-model", type="output")
        - tokens_before
        == 7
    )
    assert (
        sample("tokenbus_generator_time_to_first_token_seconds_count", model="observed-model")
        - ttft_before
        == 1
    )
    assert sample("tokenbus_generator_active_streams") == 0


async def test_a_failure_marks_the_span_and_counts_its_code(
    spans: InMemorySpanExporter,
) -> None:
    before = sample("tokenbus_generator_errors_total", model="observed-model", code="rate_limited")
    provider = observed(spans, ProviderError("rate_limited", "slow down", retryable=True))
    with pytest.raises(ProviderError):
        _ = [item async for item in provider.stream(a_request())]
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "rate_limited"
    after = sample("tokenbus_generator_errors_total", model="observed-model", code="rate_limited")
    assert after - before == 1


async def test_a_model_outside_the_catalog_is_labelled_unknown(
    spans: InMemorySpanExporter,
) -> None:
    provider = observed(spans, ProviderError("invalid_request", "no such model"))
    with pytest.raises(ProviderError):
        _ = [item async for item in provider.stream(a_request("attacker-chosen-name-123"))]
    assert sample("tokenbus_generator_errors_total", model="unknown", code="invalid_request") >= 1
    assert (
        REGISTRY.get_sample_value(
            "tokenbus_generator_errors_total",
            {"model": "attacker-chosen-name-123", "code": "invalid_request"},
        )
        is None
    )


async def test_a_cache_hit_is_counted_and_kept_out_of_the_latency_histograms(
    spans: InMemorySpanExporter,
) -> None:
    hits_before = sample("tokenbus_generator_cache_hits_total", model="observed-model")
    ttft_before = sample(
        "tokenbus_generator_time_to_first_token_seconds_count", model="observed-model"
    )
    provider = observed(
        spans,
        TextChunk("same "),
        TextChunk("answer"),
        StreamEnd("stop", "x", 0, 0, from_cache=True),
    )
    _ = [item async for item in provider.stream(a_request())]
    assert sample("tokenbus_generator_cache_hits_total", model="observed-model") - hits_before == 1
    assert (
        sample("tokenbus_generator_time_to_first_token_seconds_count", model="observed-model")
        == ttft_before
    )
    (span,) = spans.get_finished_spans()
    assert (span.attributes or {})["tokenbus.cache_hit"] is True
