"""Embedding requests and their replies (core NATS request/reply, not stored).

An embedding is answered in milliseconds while its caller waits, so it travels
as a request with a reply, served by a queue group of embedder replicas: a
lost request is the caller's timeout, never work done twice. What it cost is
metered like a turn: the embedder publishes a `turn.usage` with purpose
`embedding` under the request's `turn_id`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import BusMessage, Token

__all__ = ["EmbeddingFailure", "EmbeddingReply", "EmbeddingRequest"]


class EmbeddingRequest(BusMessage):
    """Embed `inputs` with one catalog model, for one tenant."""

    type: Literal["embedding.request"] = "embedding.request"
    turn_id: Token = Field(description="The id its usage is metered (and its budget held) under")
    part: int = Field(
        default=0, ge=0, description="Which batch of one client request (each metered once)"
    )
    tenant_id: Token
    user_id: Token = "default"
    key_id: Token | None = None
    model: str = Field(description="The catalog name of an embedding model")
    inputs: tuple[str, ...] = Field(min_length=1, max_length=2048)
    dimensions: int | None = Field(default=None, ge=1, description="Shortened vectors, if asked")
    metered: bool = Field(
        default=True, description="False: the caller meters it itself (none does yet)"
    )


class EmbeddingFailure(BaseModel):
    """Why nothing was embedded: a stable code, a safe message, the field at fault."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    code: str = Field(max_length=64)
    message: str = Field(max_length=1000)
    param: str | None = None


class EmbeddingReply(BusMessage):
    """The vectors, in input order, as base64 of little-endian float32; or the failure."""

    type: Literal["embedding.reply"] = "embedding.reply"
    vectors: tuple[str, ...] = ()
    dimensions: int = Field(default=0, ge=0)
    input_tokens: int = Field(default=0, ge=0)
    provider_model: str = ""
    failure: EmbeddingFailure | None = None
