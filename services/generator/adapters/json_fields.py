"""Fields of a provider's stream event, read from its parsed JSON without building SDK models.

Building a typed model per token was the generator's largest cost; these checks keep
what the models gave us that matters here: a chunk of another shape is a clean,
retryable upstream error, never a TypeError deep in the relay.
"""

from __future__ import annotations

from services.generator.errors import ProviderError

__all__ = ["Unreadable", "count", "mapping", "text", "unreadable_error"]


class Unreadable(Exception):
    """Parsed JSON, but not shaped like the event it claims to be."""


def unreadable_error() -> ProviderError:
    return ProviderError(
        "upstream_error", "The model sent a stream event we cannot read.", retryable=True
    )


def mapping(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise Unreadable
    return value


def text(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise Unreadable
    return value


def count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Unreadable
    return value
