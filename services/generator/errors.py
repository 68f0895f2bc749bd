"""Failures the generator can name, with the stable codes clients see."""

from __future__ import annotations

__all__ = ["ProviderError"]


class ProviderError(Exception):
    """An upstream failure, already translated to a stable code and a safe message.

    `message` goes to end users: it must never contain the provider's own text,
    which can include keys, account ids or internal hostnames.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after_s = retry_after_s
