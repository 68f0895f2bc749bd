"""A request's stored images made whole again, just before a provider is called.

The request on the bus names each uploaded image by its sha256 (the bytes are
in the images object store, see services.runtime.images); the adapters speak
data URLs. This provider wraps the failover chain, so the bytes are read once
per turn, whichever model ends up answering.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

from contracts import ChatMessage, ChatRequest, ImagePart
from services.generator.errors import ProviderError
from services.generator.ports import ModelProvider, StreamEnd, TextChunk
from services.runtime.images import ImageStore

__all__ = ["ImageReadingProvider"]


class ImageReadingProvider:
    def __init__(self, inner: ModelProvider, images: ImageStore) -> None:
        self._inner = inner
        self._images = images

    def stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        return self._stream(request)

    async def _stream(self, request: ChatRequest) -> AsyncIterator[TextChunk | StreamEnd]:
        if any(m.parts for m in request.messages):
            request = await self._with_bytes(request)
        async for item in self._inner.stream(request):
            yield item

    async def _with_bytes(self, request: ChatRequest) -> ChatRequest:
        # The same image in several messages is read once.
        read: dict[str, str] = {}
        messages: list[ChatMessage] = []
        for message in request.messages:
            parts = []
            for part in message.parts:
                if isinstance(part, ImagePart) and part.object_name is not None:
                    if part.object_name not in read:
                        read[part.object_name] = await self._data_url(part)
                    part = part.model_copy(update={"url": read[part.object_name]})
                parts.append(part)
            messages.append(message.model_copy(update={"parts": tuple(parts)}))
        return request.model_copy(update={"messages": tuple(messages)})

    async def _data_url(self, part: ImagePart) -> str:
        assert part.object_name is not None
        data = await self._images.get(part.object_name)
        if data is None:
            # Only past the store's day-long TTL, or after its bucket was lost.
            raise ProviderError(
                "invalid_request", "An image of this request is no longer stored; send it again."
            )
        return f"data:{part.media_type};base64,{base64.b64encode(data).decode()}"
