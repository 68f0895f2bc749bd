"""POST /v1/embeddings on the real stack: the official openai SDK, the real local model."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.test_usage import caught_up
from tests.support import Stack, issue_key

pytestmark = pytest.mark.e2e

MODEL = "all-minilm-l6-v2"


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers=stack.auth, timeout=60
    ) as client:
        yield client


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_the_sdk_gets_unit_vectors_of_the_documented_size(stack: Stack) -> None:
    client = stack.openai()
    texts = [
        "How do I reset my password?",
        "I forgot my password, how can I change it?",
        "What is the capital of France?",
    ]
    # The SDK asks for base64 unless told otherwise and decodes it itself.
    answer = await client.embeddings.create(model=MODEL, input=texts)
    assert answer.model == MODEL
    assert [item.index for item in answer.data] == [0, 1, 2]
    vectors = [item.embedding for item in answer.data]
    assert all(len(v) == 384 for v in vectors)
    assert all(math.isclose(math.sqrt(cosine(v, v)), 1.0, abs_tol=1e-4) for v in vectors)
    # The model means something: the paraphrase is nearer than the other question.
    assert cosine(vectors[0], vectors[1]) > 0.6 > cosine(vectors[0], vectors[2])
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 0

    floats = await client.embeddings.create(model=MODEL, input=texts[0], encoding_format="float")
    assert len(floats.data) == 1
    assert floats.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)
    # The reference vector sentence-transformers gives (tests/unit/test_minilm.py).
    assert floats.data[0].embedding[:3] == pytest.approx([0.006903, -0.063023, -0.072044], abs=1e-4)


async def test_embeddings_are_metered_with_purpose_embedding(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    async def embedded_tokens() -> int:
        response = await http.get("/v1/usage", params={"group_by": "purpose,model"})
        assert response.status_code == 200
        groups: list[dict[str, Any]] = response.json()["data"]
        return sum(
            g["input_tokens"] for g in groups if g["purpose"] == "embedding" and g["model"] == MODEL
        )

    await caught_up(stack)
    before = await embedded_tokens()
    answer = await stack.openai().embeddings.create(
        model=MODEL, input=[f"sentence {n} about the sea" for n in range(40)]
    )
    await caught_up(stack)
    assert await embedded_tokens() - before == answer.usage.prompt_tokens


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"input": ""}, 400, "input"),
        ({"input": ["fine", "  "]}, 400, "input.1"),
        ({"input": []}, 400, "input"),
        ({"input": ["x"] * 2049}, 400, "input"),
        ({"input": [[1, 2, 3]]}, 400, "input"),
        ({"input": "hello", "dimensions": 128}, 400, "dimensions"),
        ({"input": "hello", "model": "smollm2-135m"}, 400, "model"),
        ({"input": "hello", "model": "no-such-model"}, 404, "model"),
        ({"input": "hello", "encoding_format": "int8"}, 400, "encoding_format"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    http: httpx.AsyncClient, body: dict[str, Any], status: int, param: str
) -> None:
    response = await http.post("/v1/embeddings", json={"model": MODEL, **body})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert "Traceback" not in error["message"]


async def test_an_input_over_the_models_limit_is_refused_with_the_limit(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/v1/embeddings", json={"model": MODEL, "input": ["short", "word " * 300]}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == "input.1"
    assert "256" in error["message"]


async def test_an_embedding_model_cannot_chat(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await stack.openai().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}]
        )
    assert caught.value.body is not None
    assert caught.value.body["param"] == "model"  # type: ignore[index]


async def test_embeddings_count_against_the_keys_limits_and_the_tenants_own_usage(
    stack: Stack,
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    _, key = issue_key(stack, tenant, "ada", "--tpm", "60", "--daily-tokens", "1000")
    client = openai.AsyncOpenAI(base_url=f"{stack.gateway_url}/v1", api_key=key, max_retries=0)
    answer = await client.embeddings.create(model=MODEL, input="a short sentence")
    with pytest.raises(openai.RateLimitError) as caught:  # the estimate of 40 texts is over 60
        await client.embeddings.create(model=MODEL, input=["a short sentence"] * 40)
    assert caught.value.body is not None
    assert caught.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]

    await caught_up(stack)
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as http:
        response = await http.get("/v1/usage", params={"group_by": "purpose"})
    total = response.json()["total"]
    # This tenant's usage is this request alone: the dev tenant's embeddings are not here.
    assert total["input_tokens"] == answer.usage.prompt_tokens


async def test_a_list_of_2048_is_answered_whole_and_in_order(stack: Stack) -> None:
    texts = [f"item number {n}" for n in range(2048)]
    answer = await stack.openai().embeddings.create(
        model=MODEL, input=texts, encoding_format="float"
    )
    assert [item.index for item in answer.data] == list(range(2048))
    single = await stack.openai().embeddings.create(
        model=MODEL, input=texts[1500], encoding_format="float"
    )
    # Item 1500 came back from a later batch, in its place.
    assert answer.data[1500].embedding == pytest.approx(single.data[0].embedding, abs=1e-5)
