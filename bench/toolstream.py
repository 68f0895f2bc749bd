"""The tool-call stream of the benchmark: what the simulator sends, what a client checks.

A request with `tools` is answered with as many chunks as a text answer would have
tokens, each one `delta.tool_calls` piece: two calls interleaved (chunk n belongs to
call n % 2), a call's first piece carrying its id, type and name, its arguments in
pieces that join into JSON (`{"q":"t1 t3 "}`), and finish_reason `tool_calls`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CALLS", "TOOLS", "Piece", "call_arguments", "piece", "pieces"]

CALLS = 2
# What a benchmark client sends as `tools`: one small function, a real JSON Schema.
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up.",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
        },
    }
]


@dataclass(frozen=True)
class Piece:
    """One piece of one call: the call's index, its id and name on its first piece only."""

    index: int
    id: str | None
    name: str | None
    arguments: str

    def wire(self) -> dict[str, Any]:
        """The piece in OpenAI's `delta.tool_calls` item shape."""
        call: dict[str, Any] = {"index": self.index}
        function: dict[str, Any] = {"arguments": self.arguments}
        if self.id is not None:
            call["id"], call["type"] = self.id, "function"
        if self.name is not None:
            function["name"] = self.name
        call["function"] = function
        return call


def piece(n: int, total: int) -> Piece:
    """Chunk n (from 0) of a tool-call stream of `total` chunks."""
    index = n % CALLS
    last = n + CALLS >= total
    if n < CALLS:
        # The first piece opens the JSON (and closes it too when the call has one piece).
        arguments = '{"q":""}' if last else '{"q":"'
        return Piece(index, f"call_sim{index}", "lookup", arguments)
    return Piece(index, None, None, f't{n} "}}' if last else f"t{n} ")


def pieces(total: int) -> list[Piece]:
    """Every piece of a stream of `total` chunks, in the order they are sent."""
    return [piece(n, total) for n in range(total)]


def call_arguments(total: int) -> list[str]:
    """Each call's arguments, whole, as a client should have them after the stream."""
    joined = [""] * min(CALLS, total)
    for p in pieces(total):
        joined[p.index] += p.arguments
    return joined
