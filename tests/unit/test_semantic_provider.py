"""Which requests the semantic cache answers, and how: fakes at its seams, the real index."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import cast

import numpy as np

from contracts import ChatMessage, ChatRequest, FunctionTool, GenerationParams
from contracts.semantic import SemanticEntry
from services.generator.ports import StreamEnd, TextChunk
from services.generator.semantic.index import SemanticIndex
from services.generator.semantic.projection import SemanticProjection
from services.generator.semantic.provider import SemanticCachingProvider, question_of
from services.runtime.bus import Bus
from services.runtime.catalog import parse_catalog

CATALOG = parse_catalog(
    """
[models.chat]
provider = "openai"
upstream_model = "m"
semantic_cache = { threshold = 0.9, ttl_s = 600 }

[models.plain]
provider = "openai"
upstream_model = "m"

[models.emb]
provider = "local"
upstream_model = "all-minilm-l6-v2"
role = "embedding"
dimensions = 3
"""
)


class Model:
    def __init__(self) -> None:
        self.calls = 0

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        self.calls += 1
        yield TextChunk("Blue sky.")
        yield StreamEnd("stop", "m-2026", 12, 3)


class Embedder:
    """A vector per question; 'meaning' is the first word, so paraphrases can be written."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def embed(self, request: ChatRequest, model: str, text: str) -> str:
        self.asked.append(text)
        first = text.split()[0].lower()
        vector = {"sky": [1.0, 0.0, 0.0], "sea": [0.0, 1.0, 0.0]}.get(first, [0.0, 0.0, 1.0])
        if "please" in text:
            vector = [0.95, 0.31, 0.0]  # cosine 0.95 to "sky"
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


class Log:
    """The stream and the projection in one: an entry is indexed as it is appended."""

    def __init__(self, index: SemanticIndex) -> None:
        self.index = index
        self.appended: list[SemanticEntry] = []

    async def append(self, entry: SemanticEntry) -> None:
        self.appended.append(entry)
        self.index.add(entry)


def setup() -> tuple[SemanticCachingProvider, Model, Embedder, Log]:
    index = SemanticIndex()
    projection = SemanticProjection(cast(Bus, None), index)
    projection.ready.set()
    model, embedder, log = Model(), Embedder(), Log(index)
    return SemanticCachingProvider(model, CATALOG, projection, embedder, log), model, embedder, log


def ask(text: str, tenant: str = "a", model: str = "chat", **fields: object) -> ChatRequest:
    messages = fields.pop("messages", (ChatMessage(role="user", content=text),))
    return ChatRequest.model_validate(
        {
            "correlation_id": "c", "gateway_id": "g", "conversation_id": "v", "turn_id": "t",
            "tenant_id": tenant, "model": model, "messages": messages,
            "params": GenerationParams(temperature=0, max_tokens=5), **fields,
        }
    )  # fmt: skip


async def run(provider: SemanticCachingProvider, req: ChatRequest) -> StreamEnd:
    items = [item async for item in provider.stream(req)]
    end = items[-1]
    assert isinstance(end, StreamEnd)
    assert "".join(i.text for i in items if isinstance(i, TextChunk)) == "Blue sky."
    return end


async def test_a_paraphrase_over_the_threshold_is_a_hit_with_its_similarity() -> None:
    provider, model, _, log = setup()
    assert not (await run(provider, ask("sky colour?"))).from_cache
    end = await run(provider, ask("sky colour please?"))
    assert end.from_cache
    assert end.similarity is not None
    assert 0.94 < end.similarity < 0.96
    assert (end.input_tokens, end.output_tokens) == (0, 0)
    assert model.calls == 1
    assert len(log.appended) == 1  # a hit is not stored again


async def test_below_the_threshold_and_across_tenants_the_model_answers() -> None:
    provider, model, _, _ = setup()
    await run(provider, ask("sky colour?"))
    assert not (await run(provider, ask("sea colour?"))).from_cache
    assert not (await run(provider, ask("sky colour?", tenant="b"))).from_cache
    assert model.calls == 3


async def test_no_cache_asks_the_model_and_still_stores_the_answer() -> None:
    provider, model, _, log = setup()
    await run(provider, ask("sky colour?"))
    assert not (await run(provider, ask("sky colour?", no_cache=True))).from_cache
    assert model.calls == 2
    assert len(log.appended) == 2


async def test_only_single_questions_at_the_configured_temperature_are_embedded() -> None:
    provider, _, embedder, _ = setup()
    system = ChatMessage(role="system", content="Be brief.")
    user = ChatMessage(role="user", content="sky colour?")
    tool = FunctionTool(name="f", parameters={"type": "object"})
    for req in (
        ask("x", messages=(user, ChatMessage(role="assistant", content="a"), user)),
        ask("sky colour?", tools=(tool,)),
        ask("sky colour?", model="plain"),
        ask("sky colour?").model_copy(update={"params": GenerationParams(temperature=0.7)}),
    ):
        await run(provider, req)
    assert embedder.asked == []
    await run(provider, ask("x", messages=(system, user)))
    assert embedder.asked == ["sky colour?"]
    assert question_of(ask("x", messages=(system, user))) == ("Be brief.", "sky colour?")


async def test_a_different_system_prompt_is_another_namespace() -> None:
    provider, model, _, _ = setup()
    user = ChatMessage(role="user", content="sky colour?")
    await run(provider, ask("x", messages=(ChatMessage(role="system", content="A"), user)))
    end = await run(provider, ask("x", messages=(ChatMessage(role="system", content="B"), user)))
    assert not end.from_cache
    assert model.calls == 2
