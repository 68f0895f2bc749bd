"""Log probabilities of the answer's tokens, in OpenAI's Chat Completions shape."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TokenLogprob", "TopLogprob"]


class TopLogprob(BaseModel):
    """One of the likeliest tokens at a position, with its log probability."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    token: str
    logprob: float
    bytes: tuple[int, ...] | None = Field(
        default=None, description="The token's UTF-8 bytes; null if it has none"
    )


class TokenLogprob(TopLogprob):
    """A token of the answer: its log probability and the likeliest tokens at its position."""

    top_logprobs: tuple[TopLogprob, ...] = Field(
        default=(), description="At most the request's top_logprobs, likeliest first"
    )
