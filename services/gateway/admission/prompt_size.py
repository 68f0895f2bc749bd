"""How much prompt a request carries, in bytes, for the gateway's token estimates.

Tool definitions and the calls in the history count: a provider renders them
into the prompt it bills, so budgets and context checks must see them too.
Images count in tokens directly, by the estimate in `image_tokens`.
"""

from __future__ import annotations

import math

import orjson

from contracts import ChatMessage, FunctionTool, ImagePart
from services.gateway.http.errors import ApiError
from services.runtime.catalog import ModelEntry

__all__ = [
    "CHARS_PER_TOKEN",
    "check_context",
    "image_tokens",
    "images_tokens",
    "message_tokens",
    "prompt_bytes",
    "prompt_tokens",
    "tools_bytes",
]

# A deliberately rough estimate for context checks; the provider has the last word.
CHARS_PER_TOKEN = 4

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


def message_tokens(message: ChatMessage) -> int:
    return prompt_bytes(message) // CHARS_PER_TOKEN + 1 + images_tokens(message)


def prompt_tokens(messages: tuple[ChatMessage, ...], tools: tuple[FunctionTool, ...]) -> int:
    return sum(message_tokens(m) for m in messages) + tools_bytes(tools) // CHARS_PER_TOKEN


def check_context(
    entry: ModelEntry,
    messages: tuple[ChatMessage, ...],
    tools: tuple[FunctionTool, ...],
    limit: int | None,
    param: str = "messages",
) -> None:
    """400 context_length_exceeded, before anything is queued, for a prompt that cannot fit.

    Every surface checks the same way (a job too: refused at once instead of failing
    at the provider later); the provider still has the last word.
    """
    prompt = prompt_tokens(messages, tools)
    if prompt + (limit or 0) > entry.context_window:
        room = f"; with max_tokens {limit} for the answer it" if limit else " and"
        raise ApiError(
            400,
            f"The prompt is about {prompt} tokens{room} does not fit this model's context "
            f"of {entry.context_window} tokens.",
            "context_length_exceeded",
            param,
        )
