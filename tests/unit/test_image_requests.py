"""Images on the generator's side: read back from the store, then each provider's shape."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from contracts import ChatMessage, ChatRequest, ContentPart, ImagePart, TextPart, utc_now
from services.generator.adapters.anthropic_request import to_anthropic_messages
from services.generator.adapters.openai_provider import _message as openai_message
from services.generator.errors import ProviderError
from services.generator.images import ImageReadingProvider
from services.generator.ports import StreamEnd, TextChunk
from services.generator.resilience import ResilientProvider, RetryPolicy
from services.runtime.catalog import parse_catalog

PIXELS = b"\x89PNG\r\n\x1a\n not really, but the store does not look"
DIGEST = hashlib.sha256(PIXELS).hexdigest()
INLINE = "data:image/png;base64,iVBORw0KGgogbm90IHJlYWxseSwgYnV0IHRoZSBzdG9yZSBkb2VzIG5vdCBsb29r"


class MemoryImages:
    """The ImageStore seam, in memory."""

    def __init__(self, stored: dict[str, bytes]) -> None:
        self.stored = stored
        self.reads = 0

    async def put(self, name: str, data: bytes) -> None:
        self.stored[name] = data

    async def get(self, name: str) -> bytes | None:
        self.reads += 1
        return self.stored.get(name)


class Recording:
    def __init__(self) -> None:
        self.seen: list[ChatRequest] = []

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        self.seen.append(request)
        return self._answer()

    async def _answer(self) -> AsyncIterator[TextChunk | StreamEnd]:
        yield TextChunk("a cat")
        yield StreamEnd("stop", "m", 1, 1)


def request(*parts: ContentPart, model: str = "seeing") -> ChatRequest:
    return ChatRequest(
        correlation_id="c",
        gateway_id="g",
        conversation_id="v",
        turn_id="t",
        model=model,
        messages=(ChatMessage(role="user", content="What is it?", parts=parts),),
        deadline_at=utc_now() + timedelta(seconds=60),
    )


STORED = ImagePart(object_name=DIGEST, media_type="image/png", detail="low")
LINKED = ImagePart(url="https://example.com/cat.png")


async def test_stored_images_reach_the_provider_as_data_urls_read_once() -> None:
    inner, images = Recording(), MemoryImages({DIGEST: PIXELS})
    provider = ImageReadingProvider(inner, images)
    items = [
        i async for i in provider.stream(request(TextPart(text="What is it?"), STORED, STORED))
    ]
    assert isinstance(items[-1], StreamEnd)
    parts = inner.seen[0].messages[0].parts
    assert [p.url for p in parts if isinstance(p, ImagePart)] == [INLINE, INLINE]
    assert images.reads == 1


async def test_an_image_gone_from_the_store_fails_the_turn_clearly() -> None:
    provider = ImageReadingProvider(Recording(), MemoryImages({}))
    with pytest.raises(ProviderError) as raised:
        _ = [i async for i in provider.stream(request(STORED))]
    assert raised.value.code == "invalid_request"
    assert "no longer stored" in raised.value.message


def test_openai_gets_image_url_parts_in_order_with_the_detail() -> None:
    inline = STORED.model_copy(update={"url": INLINE})
    message = request(TextPart(text="What is it?"), inline, LINKED).messages[0]
    assert openai_message(message) == {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is it?"},
            {"type": "image_url", "image_url": {"url": INLINE, "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    }


def test_anthropic_gets_base64_and_url_image_blocks() -> None:
    inline = STORED.model_copy(update={"url": INLINE})
    _, turns = to_anthropic_messages(request(inline, TextPart(text="and this?"), LINKED).messages)
    assert turns == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": INLINE[22:]},
                },
                {"type": "text", "text": "and this?"},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
            ],
        }
    ]


CATALOG = parse_catalog(
    """
[models.seeing]
provider = "openai-compatible"
base_url = "http://a/v1"
upstream_model = "a"
vision = true
fallbacks = ["blind", "also-seeing"]

[models.blind]
provider = "openai-compatible"
base_url = "http://b/v1"
upstream_model = "b"

[models.also-seeing]
provider = "openai-compatible"
base_url = "http://c/v1"
upstream_model = "c"
vision = true
"""
)


class Down:
    def __init__(self) -> None:
        self.calls = 0

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        self.calls += 1
        return self._fail()

    async def _fail(self) -> AsyncIterator[TextChunk | StreamEnd]:
        raise ProviderError("upstream_unavailable", "down", retryable=True)
        yield  # pragma: no cover


async def _no_sleep(_: float) -> None:
    return None


async def test_failover_passes_over_a_model_that_cannot_see_the_images() -> None:
    seeing, blind, also = Down(), Recording(), Recording()
    provider = ResilientProvider(
        {"seeing": seeing, "blind": blind, "also-seeing": also},
        CATALOG,
        RetryPolicy(attempts=1),
        sleep=_no_sleep,
    )
    items = [i async for i in provider.stream(request(LINKED))]
    end = items[-1]
    assert isinstance(end, StreamEnd)
    assert (end.served_by, len(blind.seen), len(also.seen)) == ("also-seeing", 0, 1)
