"""How much prompt a request carries, in bytes, for the gateway's token estimates.

Tool definitions and the calls in the history count: a provider renders them
into the prompt it bills, so budgets and context checks must see them too.
Images count in tokens directly, by the estimate in `image_tokens`.
"""

from __future__ import annotations

import math

import orjson

from contracts import ChatMessage, FunctionTool, ImagePart

__all__ = ["image_tokens", "images_tokens", "prompt_bytes", "tools_bytes"]

# Anthropic bills about width * height / 750 tokens and scales an image down to
# ~1,600 tokens; OpenAI's high detail costs less for most sizes and low detail 85.
# So: that formula, at least 85, at most 1,600, and 1,600 when the size is unknown
# (an https URL the provider fetches).
_PIXELS_PER_TOKEN = 750
_MOST_TOKENS = 1_600
_LOW_DETAIL_TOKENS = 85


def prompt_bytes(message: ChatMessage) -> int:
    calls = sum(len(c.name) + len(c.arguments.encode()) for c in message.tool_calls)
    return len(message.content.encode()) + calls


def tools_bytes(tools: tuple[FunctionTool, ...]) -> int:
    if not tools:
        return 0
    return len(orjson.dumps([t.model_dump(exclude_none=True) for t in tools]))


def image_tokens(image: ImagePart) -> int:
    if image.detail == "low":
        return _LOW_DETAIL_TOKENS
    if image.width is None or image.height is None:
        return _MOST_TOKENS
    estimate = math.ceil(image.width * image.height / _PIXELS_PER_TOKEN)
    return min(_MOST_TOKENS, max(_LOW_DETAIL_TOKENS, estimate))


def images_tokens(message: ChatMessage) -> int:
    return sum(image_tokens(image) for image in message.images) if message.parts else 0
