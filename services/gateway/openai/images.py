"""Image parts of a Chat Completions request: checked at the edge, bytes set aside.

An `image_url` part is either an https URL, which the provider fetches
(tokenbus itself never fetches a client's URL), or a `data:` URL, whose bytes
must be a PNG, JPEG, GIF or WebP image within the size limit. Those bytes go to
the images object store; the request on the bus names them by sha256. Only a
user message of a catalog model marked `vision` may carry images; any other
part kind (audio, files) is refused by name, never dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image, UnidentifiedImageError

from contracts import ChatMessage, ContentPart, ImagePart, TextPart
from services.gateway.http.errors import ApiError
from services.gateway.openai.schema import ImageUrlPart, InputMessage, OtherPart
from services.gateway.openai.schema import TextPart as InputTextPart
from services.runtime.catalog import ModelEntry

__all__ = ["ImageLimits", "ReadMessages", "read_messages"]

# Pillow's format names, and the media types every provider takes.
_MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
Detail = Literal["auto", "low", "high"] | None
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]*)*),", re.ASCII)


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_images: int
    max_image_bytes: int


@dataclass(slots=True)
class ReadMessages:
    messages: tuple[ChatMessage, ...]
    uploads: dict[str, bytes] = field(default_factory=dict)
    """Image bytes to store before the request is published, by sha256."""
    image_count: int = 0


def read_messages(
    messages: Sequence[InputMessage], entry: ModelEntry, limits: ImageLimits
) -> ReadMessages:
    read = ReadMessages(messages=())
    converted: list[ChatMessage] = []
    for n, message in enumerate(messages):
        content = message.content
        if isinstance(content, list) and not all(isinstance(p, InputTextPart) for p in content):
            parts = tuple(_part(f"messages.{n}.content.{m}", p, message, entry, limits, read)
                          for m, p in enumerate(content))  # fmt: skip
            converted.append(message.to_contract(parts))
        else:
            converted.append(message.to_contract())
    read.messages = tuple(converted)
    return read


def _part(
    param: str,
    part: InputTextPart | ImageUrlPart | OtherPart,
    message: InputMessage,
    entry: ModelEntry,
    limits: ImageLimits,
    read: ReadMessages,
) -> ContentPart:
    if isinstance(part, InputTextPart):
        return TextPart(text=part.text)
    if isinstance(part, OtherPart):
        raise _unsupported(param, f"content parts of type '{part.type}' are not supported")
    if message.role != "user":
        raise _unsupported(param, "images are taken in user messages only")
    if not entry.vision:
        raise _unsupported(param, f"the model '{entry.name}' does not take images")
    read.image_count += 1
    if read.image_count > limits.max_images:
        raise ApiError(
            400,
            f"{param}: at most {limits.max_images} images in one request.",
            "too_many_images",
            param,
        )
    url, detail = part.image_url.url, part.image_url.detail
    if url.startswith("https://"):
        image = ImagePart(url=url, detail=detail)
    elif url.startswith("data:"):
        image = _stored_image(param, url, detail, limits, read)
    else:
        raise ApiError(
            400, f"{param}: an image URL must be https:// or a data: URL.", "invalid_value", param
        )
    return image


def _stored_image(
    param: str, url: str, detail: Detail, limits: ImageLimits, read: ReadMessages
) -> ImagePart:
    header = _DATA_URL.match(url)
    if header is None or "base64" not in header["params"].split(";"):
        raise _invalid_image(param, "is not a base64 data: URL")
    encoded = url[header.end() :]
    # Measured before decoding: 4 base64 characters carry 3 bytes.
    if len(encoded) // 4 * 3 > limits.max_image_bytes:
        raise _too_large(param, limits)
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid_image(param, "is not valid base64") from None
    if len(data) > limits.max_image_bytes:
        raise _too_large(param, limits)
    media_type, width, height = _measure(param, data)
    name = hashlib.sha256(data).hexdigest()
    read.uploads[name] = data
    return ImagePart(
        object_name=name,
        media_type=media_type,
        detail=detail,
        width=width,
        height=height,
    )


def _measure(param: str, data: bytes) -> tuple[str, int, int]:
    """The image's real media type and size, read from its header (nothing is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind, (width, height) = image.format, image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _invalid_image(param, "is not a PNG, JPEG, GIF or WebP image") from None
    except (OSError, ValueError, SyntaxError):
        raise _invalid_image(param, "is not a readable image") from None
    media_type = _MEDIA_TYPES.get(kind or "")
    if media_type is None:
        raise _invalid_image(param, f"is a {kind} image; send PNG, JPEG, GIF or WebP")
    return media_type, width, height


def _unsupported(param: str, why: str) -> ApiError:
    return ApiError(400, f"{param}: {why}.", "unsupported_content", param)


def _invalid_image(param: str, why: str) -> ApiError:
    return ApiError(400, f"{param}: the data URL {why}.", "invalid_image", param)


def _too_large(param: str, limits: ImageLimits) -> ApiError:
    return ApiError(
        413,
        f"{param}: an image may be at most {limits.max_image_bytes} bytes.",
        "image_too_large",
        param,
    )
