"""Expected failures of an embedding, each with its stable code and the field at fault."""

from __future__ import annotations

__all__ = ["EmbeddingError"]


class EmbeddingError(Exception):
    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
