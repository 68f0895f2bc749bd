"""Image parts of a Chat Completions body: checked, measured and set aside at the edge."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import pytest
from PIL import Image

from contracts import ChatMessage, ImagePart, Limits, TextPart
from services.gateway.admission.gate import worst_case_prompt_tokens
from services.gateway.admission.prompt_size import image_tokens
from services.gateway.caller import Caller
from services.gateway.config import GatewaySettings
from services.gateway.http.errors import ApiError
from services.gateway.openai.completions import to_chat_request
from services.gateway.openai.schema import ChatCompletionRequest
from services.gateway.turns.request import PreparedTurn
from services.runtime.catalog import parse_catalog

CATALOG = parse_catalog(
    """
[models.seeing]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "seeing"
vision = true

[models.blind]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "blind"
"""
)
CALLER = Caller(tenant_id="t", user_id="u", key_id="k", key_limits=Limits())


def picture(kind: str = "PNG", size: tuple[int, int] = (64, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=kind)
    return out.getvalue()


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def image_part(url: str, detail: str | None = None) -> dict[str, Any]:
    image: dict[str, Any] = {"url": url}
    if detail is not None:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def prepare(
    *parts: dict[str, Any], model: str = "seeing", role: str = "user", **settings: Any
) -> PreparedTurn:
    content = [{"type": "text", "text": "What is in it?"}, *parts]
    body = {"model": model, "messages": [{"role": role, "content": content}]}
    parsed = ChatCompletionRequest.model_validate(body)
    return to_chat_request(parsed, GatewaySettings(**settings), CATALOG, CALLER, "c1")


def refusal(*parts: dict[str, Any], **kw: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        prepare(*parts, **kw)
    return caught.value


def test_a_data_url_image_is_stored_apart_and_named_by_its_digest() -> None:
    data = picture()
    prepared = prepare(image_part(data_url(data), "high"))
    message = prepared.request.messages[0]
    assert message.content == "What is in it?"
    text, image = message.parts
    assert text == TextPart(text="What is in it?")
    assert isinstance(image, ImagePart)
    digest = hashlib.sha256(data).hexdigest()
    assert (image.object_name, image.media_type, image.detail) == (digest, "image/png", "high")
    assert (image.width, image.height, image.url) == (64, 32, None)
    assert prepared.images == {digest: data}
    # The bus message carries the name, never the bytes.
    assert base64.b64encode(data).decode() not in prepared.request.model_dump_json()


def test_the_media_type_is_the_one_the_bytes_have() -> None:
    prepared = prepare(image_part(data_url(picture("JPEG"), "image/png")))
    assert prepared.request.messages[0].images[0].media_type == "image/jpeg"


def test_an_https_image_goes_to_the_provider_as_its_url() -> None:
    prepared = prepare(image_part("https://example.com/cat.png"))
    assert prepared.request.messages[0].images == (ImagePart(url="https://example.com/cat.png"),)
    assert prepared.images == {}


def test_the_same_image_twice_is_stored_once() -> None:
    url = data_url(picture())
    prepared = prepare(image_part(url), image_part(url))
    assert len(prepared.request.messages[0].images) == 2
    assert len(prepared.images) == 1


def test_a_text_only_model_refuses_the_image_by_its_place() -> None:
    error = refusal(image_part(data_url(picture())), model="blind")
    assert (error.status, error.code, error.param) == (
        400,
        "unsupported_content",
        "messages.0.content.1",
    )
    assert "'blind' does not take images" in error.message


@pytest.mark.parametrize("role", ["system", "assistant"])
def test_images_belong_in_user_messages(role: str) -> None:
    error = refusal(image_part(data_url(picture())), role=role)
    assert (error.code, error.param) == ("unsupported_content", "messages.0.content.1")


def test_a_part_of_another_kind_is_refused_by_name() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    error = refusal(audio)
    assert (error.status, error.code, error.param) == (
        400,
        "unsupported_content",
        "messages.0.content.1",
    )
    assert "input_audio" in error.message


def test_more_images_than_allowed_is_a_400_naming_the_limit() -> None:
    url = data_url(picture())
    error = refusal(image_part(url), image_part(url), image_part(url), max_images=2)
    assert (error.status, error.code, error.param) == (
        400,
        "too_many_images",
        "messages.0.content.3",
    )
    assert "at most 2 images" in error.message


def test_an_image_over_the_size_limit_is_a_413_naming_the_limit() -> None:
    big = picture(size=(512, 512))
    error = refusal(image_part(data_url(big)), max_image_bytes=len(big) - 1)
    assert (error.status, error.code, error.param) == (
        413,
        "image_too_large",
        "messages.0.content.1",
    )
    assert f"at most {len(big) - 1} bytes" in error.message


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("data:image/png;base64,@@@@", "not valid base64"),
        (data_url(b"just some text, no image"), "not a PNG, JPEG, GIF or WebP image"),
        (data_url(picture("BMP"), "image/bmp"), "is a BMP image"),
        ("data:image/png,rawbytes", "not a base64 data: URL"),
    ],
)
def test_a_data_url_that_is_not_an_image_is_refused(url: str, why: str) -> None:
    error = refusal(image_part(url))
    assert (error.status, error.code, error.param) == (
        400,
        "invalid_image",
        "messages.0.content.1",
    )
    assert why in error.message


@pytest.mark.parametrize("url", ["http://example.com/cat.png", "file:///etc/passwd", "cat.png"])
def test_only_https_and_data_urls_are_taken(url: str) -> None:
    error = refusal(image_part(url))
    assert (error.status, error.code) == (400, "invalid_value")


def test_images_count_in_the_budget_estimate() -> None:
    text_only = prepare().request.messages
    with_image = prepare(image_part(data_url(picture(size=(1000, 750))))).request.messages
    assert worst_case_prompt_tokens(with_image) - worst_case_prompt_tokens(text_only) == 1000


@pytest.mark.parametrize(
    ("image", "tokens"),
    [
        (ImagePart(object_name="0" * 64, width=1000, height=750), 1000),
        (ImagePart(object_name="0" * 64, width=4000, height=4000), 1600),
        (ImagePart(object_name="0" * 64, width=10, height=10), 85),
        (ImagePart(url="https://example.com/a.png"), 1600),
        (ImagePart(url="https://example.com/a.png", detail="low"), 85),
    ],
)
def test_image_token_estimate(image: ImagePart, tokens: int) -> None:
    assert image_tokens(image) == tokens


def test_a_message_without_images_reads_as_before_on_the_bus() -> None:
    assert "parts" not in ChatMessage(role="user", content="hi").model_dump_json()
