"""The embedder's checks and metering, with fakes only at its Protocol seams."""

from __future__ import annotations

import base64
from array import array

import pytest

from contracts import EmbeddingRequest, TurnUsage
from services.embedder.ports import Embedded
from services.embedder.service import answer, usage_event_id
from services.gateway.embeddings.schema import EmbeddingsRequest
from services.gateway.embeddings.service import _batches, decode_vector, inputs_of
from services.gateway.http.errors import ApiError
from services.runtime.catalog import parse_catalog

CATALOG = parse_catalog(
    """
[models."local"]
provider = "local"
upstream_model = "all-minilm-l6-v2"
role = "embedding"
dimensions = 4
context_window = 256

[models."remote"]
provider = "openai-compatible"
base_url = "http://embeddings.internal/v1"
upstream_model = "e3"
role = "embedding"
dimensions = 8
shortens = true
"""
)


class FakeModel:
    def __init__(self, counts: list[int] | None = None) -> None:
        self.counts = counts
        self.asked: list[tuple[list[str], int | None]] = []

    async def count_tokens(self, texts: list[str]) -> list[int] | None:
        return self.counts

    async def embed(self, texts: list[str], dimensions: int | None) -> Embedded:
        self.asked.append((texts, dimensions))
        size = dimensions or 4
        return Embedded([[0.5] * size for _ in texts], input_tokens=7, provider_model="p")


class Sink:
    def __init__(self) -> None:
        self.events: list[TurnUsage] = []

    async def publish(self, usage: TurnUsage) -> None:
        self.events.append(usage)


def request(**fields: object) -> EmbeddingRequest:
    base: dict[str, object] = {
        "correlation_id": "c",
        "turn_id": "t1",
        "tenant_id": "acme",
        "model": "local",
        "inputs": ("hello",),
    }
    return EmbeddingRequest.model_validate({**base, **fields})


async def test_vectors_come_back_as_base64_float32_and_the_usage_is_metered_once() -> None:
    sink = Sink()
    reply = await answer(request(part=2), CATALOG, {"local": FakeModel([3])}, sink)
    assert reply.failure is None
    assert reply.dimensions == 4
    floats = array("f")
    floats.frombytes(base64.b64decode(reply.vectors[0]))
    assert floats.tolist() == [0.5] * 4
    assert decode_vector(reply.vectors[0]) == [0.5] * 4
    (usage,) = sink.events
    assert (usage.purpose, usage.input_tokens, usage.tenant_id) == ("embedding", 7, "acme")
    assert usage.event_id == usage_event_id("t1", 2) != usage_event_id("t1", 3)


async def test_an_input_over_the_limit_names_it_and_the_limit_and_meters_nothing() -> None:
    sink = Sink()
    model = FakeModel([3, 300])
    reply = await answer(request(inputs=("a", "b")), CATALOG, {"local": model}, sink)
    assert reply.failure is not None
    assert reply.failure.code == "context_length_exceeded"
    assert reply.failure.param == "input.1"
    assert "256" in reply.failure.message
    assert model.asked == []
    assert sink.events == []


@pytest.mark.parametrize(
    ("model", "dimensions", "ok"),
    [("local", 4, True), ("local", 2, False), ("remote", 3, True), ("remote", 9, False)],
)
async def test_dimensions_only_where_the_model_can_give_them(
    model: str, dimensions: int, ok: bool
) -> None:
    fake = FakeModel()
    reply = await answer(
        request(model=model, dimensions=dimensions), CATALOG, {model: fake}, Sink()
    )
    assert (reply.failure is None) == ok
    if not ok:
        assert reply.failure is not None
        assert reply.failure.param == "dimensions"


async def test_a_model_that_is_not_an_embedding_model_here_is_refused_by_name() -> None:
    reply = await answer(request(model="missing"), CATALOG, {}, Sink())
    assert reply.failure is not None
    assert reply.failure.param == "model"


@pytest.mark.parametrize(
    ("body", "param"),
    [({"input": " "}, "input"), ({"input": ["a", ""]}, "input.1"), ({"input": [1, 2]}, "input")],
)
def test_the_gateway_names_the_bad_input(body: dict[str, object], param: str) -> None:
    with pytest.raises(ApiError) as caught:
        inputs_of(EmbeddingsRequest.model_validate({"model": "local", **body}))
    assert caught.value.status == 400
    assert caught.value.param == param


def test_batches_keep_the_order_and_fit_a_bus_message() -> None:
    texts = [f"text {n}" for n in range(1000)]
    batches = _batches(texts, 3072)  # 39 vectors of 3072 floats fit in 120,000
    assert [t for _, batch in batches for t in batch] == texts
    assert all(len(batch) <= 39 for _, batch in batches)
    assert [offset for offset, _ in batches] == list(range(0, 1000, 39))
    big = ["x" * 200_000, "y" * 200_000]
    assert [len(b) for _, b in _batches(big, 384)] == [1, 1]  # 256 KB of text at most
