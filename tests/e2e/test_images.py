"""Image input through the whole system: openai SDK -> gateway -> bus and object store ->
generator -> the provider's own wire format.

No model that sees runs offline here, so the vision models of this catalog are the
scripted upstream, which records every body it receives: the test reads exactly
what OpenAI's and Anthropic's APIs would have been sent. The refusal for a
text-only model is checked against the real local model.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from PIL import Image

from tests.faults.upstream import FaultyUpstream
from tests.support import Stack, running_stack

pytestmark = pytest.mark.e2e

CAT_URL = "https://images.example.com/cat.png"


def picture(kind: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    # Noise does not compress: the file is as big as a photo of that size.
    Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)).save(out, format=kind)
    return out.getvalue()


# Bigger than one bus message may be (NATS: 1 MB): only the object store can carry it.
PHOTO = picture("PNG", (700, 700))
assert len(PHOTO) > 1_200_000
PHOTO_B64 = base64.b64encode(PHOTO).decode()
SMALL_JPEG_B64 = base64.b64encode(picture("JPEG", (40, 30))).decode()


@pytest.fixture(scope="module")
def vision_stack(
    upstream: FaultyUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    state = Path(tmp_path_factory.mktemp("vision"))
    catalog = state / "catalog.toml"
    catalog.write_text(
        f"""
[models.smollm2-135m]
provider = "openai-compatible"
base_url = "${{TOKENBUS_LOCAL_MODEL_URL}}/v1"
upstream_model = "smollm2-135m"
context_window = 4096

[models.seeing]
provider = "openai-compatible"
base_url = "{upstream.base_url}"
upstream_model = "seeing"
context_window = 32768
vision = true

[models.seeing-anthropic]
provider = "anthropic"
base_url = "{upstream.base_url.removesuffix("/v1")}"
upstream_model = "seeing-anthropic"
context_window = 32768
vision = true
"""
    )
    with running_stack(state, "--catalog", str(catalog)) as stack:
        yield stack


@pytest.fixture
async def client(vision_stack: Stack) -> AsyncIterator[AsyncOpenAI]:
    async with vision_stack.openai() as sdk:
        yield sdk


def ask(*images: dict[str, Any]) -> list[Any]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, *images]}]


def image(url: str, detail: str | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"url": url}
    if detail is not None:
        part["detail"] = detail
    return {"type": "image_url", "image_url": part}


async def test_openai_receives_the_images_exactly_as_sent(
    client: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    upstream.play({"kind": "text", "text": "Noise."})
    messages = ask(image(f"data:image/png;base64,{PHOTO_B64}", "high"), image(CAT_URL))
    answer = await client.chat.completions.create(model="seeing", messages=messages)
    assert answer.choices[0].message.content == "Noise."
    sent = upstream.bodies[-1]["messages"][0]
    assert sent == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {
                "type": "image_url",
                "image_url": {"url": f"data:image/png;base64,{PHOTO_B64}", "detail": "high"},
            },
            {"type": "image_url", "image_url": {"url": CAT_URL}},
        ],
    }


async def test_anthropic_receives_image_blocks(
    client: AsyncOpenAI, upstream: FaultyUpstream
) -> None:
    # The data URL says PNG, the bytes are JPEG: Anthropic is told what they really are.
    messages = ask(image(f"data:image/png;base64,{SMALL_JPEG_B64}"), image(CAT_URL))
    stream = await client.chat.completions.create(
        model="seeing-anthropic", messages=messages, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith("tok0 ")
    sent = upstream.bodies[-1]["messages"]
    assert sent == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/jpeg",
                        "data": SMALL_JPEG_B64,
                    },
                },
                {"type": "image", "source": {"type": "url", "url": CAT_URL}},
            ],
        }
    ]


async def test_a_text_only_model_refuses_an_image(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model="smollm2-135m", messages=ask(image(CAT_URL)))
    error = refused.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("unsupported_content", "messages.0.content.1")
    assert "does not take images" in error["message"]


async def test_image_limits_answer_with_the_limit(vision_stack: Stack) -> None:
    async with httpx.AsyncClient(
        base_url=vision_stack.gateway_url, headers=vision_stack.auth, timeout=30
    ) as http:
        not_an_image = base64.b64encode(b"%PDF-1.7 not a picture").decode()
        bad = await http.post(
            "/v1/chat/completions",
            json={
                "model": "seeing",
                "messages": ask(image(f"data:image/png;base64,{not_an_image}")),
            },
        )
        many = await http.post(
            "/v1/chat/completions",
            json={"model": "seeing", "messages": ask(*[image(CAT_URL)] * 21)},
        )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_image"
    assert bad.json()["error"]["param"] == "messages.0.content.1"
    assert many.status_code == 400
    assert many.json()["error"]["code"] == "too_many_images"
    assert "at most 20 images" in many.json()["error"]["message"]
