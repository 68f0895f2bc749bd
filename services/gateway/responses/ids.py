"""Response ids: which conversation and turn a response is, read from the id itself.

A stored response is a turn of a conversation, so its id carries both
(`resp_<conversation>_<turn>`): no mapping to store or lose, and the
conversation is then looked up under the caller's own tenant, so another
tenant's id finds nothing. A response that is not stored has only its turn
(`resp_<turn>`), and nothing to find.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["StoredTurn", "parse_response_id", "response_id"]

_TOKEN = r"[A-Za-z0-9-]{1,64}"
_STORED = re.compile(rf"^resp_({_TOKEN})_({_TOKEN})$")


@dataclass(frozen=True, slots=True)
class StoredTurn:
    conversation_id: str
    turn_id: str


def response_id(conversation_id: str, turn_id: str, stored: bool) -> str:
    return f"resp_{conversation_id}_{turn_id}" if stored else f"resp_{turn_id}"


def parse_response_id(value: str) -> StoredTurn | None:
    """The stored turn an id names; None for anything else (unknown, or never stored)."""
    match = _STORED.match(value)
    return None if match is None else StoredTurn(match[1], match[2])
