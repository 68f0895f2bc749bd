"""How much prompt a request carries, in bytes, for the gateway's token estimates.

Tool definitions and the calls in the history count: a provider renders them
into the prompt it bills, so budgets and context checks must see them too.
"""

from __future__ import annotations

import orjson

from contracts import ChatMessage, FunctionTool

__all__ = ["prompt_bytes", "tools_bytes"]


def prompt_bytes(message: ChatMessage) -> int:
    calls = sum(len(c.name) + len(c.arguments.encode()) for c in message.tool_calls)
    return len(message.content.encode()) + calls


def tools_bytes(tools: tuple[FunctionTool, ...]) -> int:
    if not tools:
        return 0
    return len(orjson.dumps([t.model_dump(exclude_none=True) for t in tools]))
