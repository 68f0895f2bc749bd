"""The request's Cache-Control: `no-cache` (or `no-store`) keeps its answer off the caches."""

from __future__ import annotations

from dataclasses import replace

from contracts import ChatRequest
from services.gateway.turns.request import PreparedTurn

__all__ = ["fresh_if_asked", "unless_cached", "wants_fresh"]

_BYPASS = frozenset({"no-cache", "no-store"})


def wants_fresh(cache_control: str | None) -> bool:
    if not cache_control:
        return False
    return any(part.strip().lower() in _BYPASS for part in cache_control.split(","))


def fresh_if_asked(request: ChatRequest, cache_control: str | None) -> ChatRequest:
    """The request, marked no_cache when the client opted out of cached answers."""
    if not wants_fresh(cache_control):
        return request
    return request.model_copy(update={"no_cache": True})


def unless_cached(prepared: PreparedTurn, cache_control: str | None) -> PreparedTurn:
    """The turn as asked; marked no_cache when the client opted out of cached answers."""
    if not wants_fresh(cache_control):
        return prepared
    return replace(prepared, request=fresh_if_asked(prepared.request, cache_control))
