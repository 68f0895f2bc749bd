"""GET /v1/models and /v1/models/{id} as the official openai SDK reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import openai
import pytest

from tests.integration.in_process import Gateway, running_gateway


@pytest.fixture(scope="module")
async def gateway(nats_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(nats_url) as running:
        yield running


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    key = gateway.http.headers["Authorization"].removeprefix("Bearer ")
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=gateway.app)) as http:
        yield openai.AsyncOpenAI(
            base_url="http://gateway/v1", api_key=key, http_client=http, max_retries=0
        )


async def test_the_sdk_retrieves_a_model_in_openais_shape(client: openai.AsyncOpenAI) -> None:
    model = await client.models.retrieve("small")
    assert (model.id, model.object, model.owned_by) == ("small", "model", "openai-compatible")
    assert model.model_extra == {"context_window": 4096, "max_output_tokens": 1024}
    listed = [m.id async for m in client.models.list()]
    assert listed == ["small"]  # the utility model is not offered for chat


@pytest.mark.parametrize("name", ["gpt-99", "namer"])
async def test_a_model_not_served_for_chat_is_404_model_not_found(
    client: openai.AsyncOpenAI, name: str
) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await client.models.retrieve(name)
    assert missing.value.code == "model_not_found"
    assert missing.value.param == "model"
    assert isinstance(missing.value.body, dict)
    assert set(missing.value.body) == {"message", "type", "param", "code"}
