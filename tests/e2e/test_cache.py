"""The exact-response cache on the real stack: a repeat is served without the model."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support import Stack, running_stack

pytestmark = pytest.mark.e2e

QUESTION = [{"role": "user", "content": "Name three kinds of cheese."}]


@pytest.fixture(scope="module")
def cache_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = Path(tmp_path_factory.mktemp("cache"))
    catalog = state / "catalog.toml"
    catalog.write_text(
        """
[models.cached]
provider = "openai-compatible"
base_url = "${TOKENBUS_LOCAL_MODEL_URL}/v1"
upstream_model = "smollm2-135m"
context_window = 4096
max_output_tokens = 256
cache_ttl_s = 600

[models.uncached]
provider = "openai-compatible"
base_url = "${TOKENBUS_LOCAL_MODEL_URL}/v1"
upstream_model = "smollm2-135m"
context_window = 4096
max_output_tokens = 256
"""
    )
    with running_stack(state, "--catalog", str(catalog)) as stack:
        yield stack


@pytest.fixture
async def client(cache_stack: Stack) -> AsyncIterator[openai.AsyncOpenAI]:
    async with cache_stack.openai() as sdk:
        yield sdk


async def predicted_tokens(stack: Stack) -> int:
    async with httpx.AsyncClient() as http:
        text = (await http.get(stack.upstream_url.removesuffix("/v1") + "/metrics")).text
    found = re.search(r"^llamacpp:tokens_predicted_total (\d+)", text, re.MULTILINE)
    assert found
    return int(found.group(1))


async def test_a_repeated_request_is_replayed_from_the_cache(
    cache_stack: Stack, client: openai.AsyncOpenAI
) -> None:
    first = await client.chat.completions.create(
        model="cached", messages=QUESTION, temperature=0, max_tokens=24
    )
    assert first.system_fingerprint is None
    assert first.usage is not None
    assert first.usage.completion_tokens > 0
    before = await predicted_tokens(cache_stack)

    stream = await client.chat.completions.create(
        model="cached",
        messages=QUESTION,
        temperature=0,
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, fingerprints, usage = [], set(), None
    async for chunk in stream:
        fingerprints.add(chunk.system_fingerprint)
        usage = chunk.usage or usage
        pieces += [c.delta.content for c in chunk.choices if c.delta.content]
    assert "".join(pieces) == first.choices[0].message.content
    assert len(pieces) > 1  # replayed as a stream, not one lump
    assert "tokenbus-cache" in fingerprints
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (0, 0)
    # The model was not asked again.
    assert await predicted_tokens(cache_stack) == before


async def test_sampling_requests_and_uncached_models_always_reach_the_model(
    cache_stack: Stack, client: openai.AsyncOpenAI
) -> None:
    for model, temperature in (("cached", 0.8), ("uncached", 0.0)):
        for _ in range(2):
            answer = await client.chat.completions.create(
                model=model, messages=QUESTION, temperature=temperature, max_tokens=8
            )
            assert answer.system_fingerprint is None
            assert answer.usage is not None
            assert answer.usage.completion_tokens > 0
