"""How a utility model is asked for a title: which model, how long, how free, how patient."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TitleCall"]


@dataclass(frozen=True, slots=True)
class TitleCall:
    name: str  # the catalog's name, reported on usage events
    upstream_model: str  # the provider's name for it
    max_tokens: int
    temperature: float
    timeout_s: float
    reasoning: bool = False
