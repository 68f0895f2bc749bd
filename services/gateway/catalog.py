"""What the gateway needs from the model catalog: which models exist and their limits."""

from __future__ import annotations

from services.gateway.config import GatewaySettings
from services.gateway.http.errors import ApiError
from services.runtime.catalog import Catalog, ModelEntry

__all__ = [
    "chat_model",
    "check_output_limit",
    "deadline_s",
    "default_chat_model",
    "embedding_model",
]


def chat_model(catalog: Catalog, name: str) -> ModelEntry:
    """The catalog entry for a model clients may chat with, or 404 model_not_found."""
    return _model_for(
        catalog, name, "chat", "is an embedding model: use it with POST /v1/embeddings"
    )


def _model_for(catalog: Catalog, name: str, role: str, is_instead: str) -> ModelEntry:
    """The entry of `name` serving `role`; 400 saying what it `is` instead, 404 for none.

    (A utility model is not the clients' to call: it is as unknown to them as no model.)
    """
    entry = catalog.get(name)
    if entry is not None and entry.role != role and "embedding" in (role, entry.role):
        raise ApiError(
            400,
            f"The model '{name}' {is_instead}.",
            "invalid_value",
            "model",
        )
    if entry is None or entry.role != role:
        raise ApiError(
            404,
            f"The model '{name}' does not exist; GET /v1/models lists the models.",
            "model_not_found",
            "model",
        )
    return entry


def check_output_limit(entry: ModelEntry, max_tokens: int | None) -> None:
    """400 when a request asks for more output than the model may give."""
    if max_tokens is not None and max_tokens > entry.max_output_tokens:
        raise ApiError(
            400,
            f"max_tokens is {max_tokens}, above this model's limit of {entry.max_output_tokens}.",
            "invalid_value",
            "max_tokens",
        )


def default_chat_model(catalog: Catalog) -> ModelEntry:
    return catalog.chat_models()[0]


def deadline_s(entry: ModelEntry, settings: GatewaySettings) -> float:
    return entry.deadline_s or settings.request_deadline_s


def embedding_model(catalog: Catalog, name: str) -> ModelEntry:
    """The catalog entry of an embedding model; 400 for a chat model, 404 for no model."""
    return _model_for(
        catalog, name, "embedding", "is not an embedding model; it serves chat, not embeddings"
    )
