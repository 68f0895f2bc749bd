"""Letting a generation request in: the key's rate limits, then the tenant's and key's budgets.

Runs before a request is published. A budget holds a reservation of the
request's worst case (estimated prompt + the most output it may produce) until
the usage service has counted what the turn really used; to make that worst
case true, a request under a budget that names no max_tokens gets the model's
own output limit as its max_tokens.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts import ChatMessage, ChatRequest, FunctionTool, Limits, utc_now
from contracts.subjects import SpendScope
from services.gateway.admission.prompt_size import images_tokens, prompt_bytes, tools_bytes
from services.gateway.admission.ratelimit import RateLimiter, RateWindow
from services.gateway.caller import Caller
from services.gateway.http.errors import ApiError
from services.runtime.budgets import Amount, Budgets, Overspent, seconds_until_midnight
from services.runtime.catalog import ModelEntry
from services.runtime.keys import KeyStore

__all__ = ["Admission", "Admitted", "rate_headers", "worst_case_prompt_tokens"]

log = logging.getLogger("tokenbus.gateway")

# After its deadline a turn can no longer spend: its reservation may lapse then.
_RESERVATION_SLACK = timedelta(minutes=2)


def worst_case_prompt_tokens(
    messages: tuple[ChatMessage, ...], tools: tuple[FunctionTool, ...] = ()
) -> int:
    """A deliberately high guess: 1 token per 3 UTF-8 bytes, plus chat-template overhead.

    Real tokenizers average about 4 bytes per token on English text; the margin
    keeps a reservation above what the provider will actually count. Tool
    definitions and calls are prompt too: the provider renders them into it.
    Images count at services.gateway.admission.prompt_size's estimate.
    """
    return (
        32
        + sum(16 + math.ceil(prompt_bytes(m) / 3) + images_tokens(m) for m in messages)
        + math.ceil(tools_bytes(tools) / 3)
    )


@dataclass(frozen=True, slots=True)
class Admitted:
    request: ChatRequest
    headers: dict[str, str] = field(default_factory=dict)
    reserved: tuple[tuple[SpendScope, str], ...] = ()


def rate_headers(windows: list[RateWindow]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for window in windows:
        headers[f"x-ratelimit-limit-{window.measure}"] = str(window.limit)
        headers[f"x-ratelimit-remaining-{window.measure}"] = str(window.remaining)
        headers[f"x-ratelimit-reset-{window.measure}"] = f"{window.reset_s:.0f}s"
    return headers


def _budget_scopes(caller: Caller, tenant: Limits) -> list[tuple[SpendScope, str, Limits]]:
    scopes: list[tuple[SpendScope, str, Limits]] = []
    for scope, scope_id, limits in (
        ("tenant", caller.tenant_id, tenant),
        ("key", caller.key_id, caller.key_limits),
    ):
        if limits.daily_tokens is not None or limits.daily_cost_usd is not None:
            scopes.append((scope, scope_id, limits))  # type: ignore[arg-type]
    return scopes


class Admission:
    def __init__(self, keys: KeyStore, rates: RateLimiter, budgets: Budgets) -> None:
        self._keys = keys
        self._rates = rates
        self._budgets = budgets

    async def rate_status(self, caller: Caller) -> dict[str, str]:
        """The x-ratelimit-* headers for a response that counted nothing."""
        limits = caller.key_limits
        windows = await self._rates.peek(
            caller.key_id, limits.requests_per_minute, limits.tokens_per_minute, utc_now()
        )
        return rate_headers(windows)

    async def admit(self, caller: Caller, request: ChatRequest, entry: ModelEntry) -> Admitted:
        """The request as it may be published (max_tokens pinned), or 429 with the reason."""
        now = utc_now()
        tenant = (await self._keys.tenant(caller.tenant_id)).limits
        scopes = _budget_scopes(caller, tenant)
        output = request.params.max_tokens or entry.max_output_tokens
        if scopes and request.params.max_tokens is None:
            request = request.model_copy(
                update={"params": request.params.model_copy(update={"max_tokens": output})}
            )
        prompt = worst_case_prompt_tokens(request.messages, request.tools)
        windows, throttled = await self._rates.take(
            caller.key_id,
            caller.key_limits.requests_per_minute,
            caller.key_limits.tokens_per_minute,
            prompt + output,
            now,
        )
        headers = rate_headers(windows)
        if throttled is not None:
            raise _throttled(throttled.window, headers)
        worst = Amount(prompt + output, math.ceil(entry.cost(prompt, output) * 1_000_000))
        reserved = await self._reserve(
            scopes,
            request.occurred_at.date().isoformat(),
            request.turn_id,
            request.deadline_at or now + timedelta(hours=1),
            worst,
            now,
        )
        return Admitted(request=request, headers=headers, reserved=reserved)

    async def admit_tokens(
        self, caller: Caller, entry: ModelEntry, turn_id: str, tokens: int
    ) -> tuple[dict[str, str], tuple[tuple[SpendScope, str], ...]]:
        """Work that only reads tokens (embeddings): the same rate limits and budgets as a
        turn, for `tokens` of input; the rate headers and what was reserved."""
        now = utc_now()
        tenant = (await self._keys.tenant(caller.tenant_id)).limits
        windows, throttled = await self._rates.take(
            caller.key_id,
            caller.key_limits.requests_per_minute,
            caller.key_limits.tokens_per_minute,
            tokens,
            now,
        )
        headers = rate_headers(windows)
        if throttled is not None:
            raise _throttled(throttled.window, headers)
        worst = Amount(tokens, math.ceil(entry.cost(tokens, 0) * 1_000_000))
        reserved = await self._reserve(
            _budget_scopes(caller, tenant),
            now.date().isoformat(),
            turn_id,
            now + timedelta(minutes=1),
            worst,
            now,
        )
        return headers, reserved

    async def release_tokens(
        self, turn_id: str, day: str, reserved: tuple[tuple[SpendScope, str], ...]
    ) -> None:
        """Nothing was metered after all (the work failed): give the reservations back."""
        for scope, scope_id in reserved:
            try:
                await self._budgets.release(day, scope, scope_id, turn_id)
            except Exception as exc:  # it lapses at its deadline anyway
                log.warning("reservation not released", extra={"error_type": type(exc).__name__})

    async def _reserve(
        self,
        scopes: list[tuple[SpendScope, str, Limits]],
        day: str,
        turn_id: str,
        deadline: datetime,
        worst: Amount,
        now: datetime,
    ) -> tuple[tuple[SpendScope, str], ...]:
        reserved: list[tuple[SpendScope, str]] = []
        for scope, scope_id, limits in scopes:
            refused = await self._budgets.reserve(
                day,
                scope,
                scope_id,
                turn_id,
                worst,
                limits.daily_tokens,
                None if limits.daily_cost_usd is None else int(limits.daily_cost_usd * 1_000_000),
                expires_at=deadline + _RESERVATION_SLACK,
                now=now,
            )
            if refused is not None:
                for done_scope, done_id in reserved:
                    await self._budgets.release(day, done_scope, done_id, turn_id)
                raise _over_budget(scope, refused, now)
            reserved.append((scope, scope_id))
        return tuple(reserved)

    async def release(self, admitted: Admitted) -> None:
        """The request was not published after all: give its reservations back."""
        day = admitted.request.occurred_at.date().isoformat()
        for scope, scope_id in admitted.reserved:
            try:
                await self._budgets.release(day, scope, scope_id, admitted.request.turn_id)
            except Exception as exc:  # it lapses at its deadline anyway
                log.warning("reservation not released", extra={"error_type": type(exc).__name__})


def _throttled(window: RateWindow, headers: dict[str, str]) -> ApiError:
    return ApiError(
        429,
        f"Rate limit reached: {window.limit} {window.measure} per minute for this key "
        f"({window.used} used). Try again in {math.ceil(window.reset_s)} s.",
        "rate_limit_exceeded",
        headers={
            **headers,
            **rate_headers([window]),
            "Retry-After": str(math.ceil(window.reset_s)),
        },
    )


def _over_budget(scope: SpendScope, refused: Overspent, now: datetime) -> ApiError:
    whose = "this tenant's" if scope == "tenant" else "this key's"
    if refused.measure == "tokens":
        amount = f"{refused.limit} tokens"
    else:
        amount = f"${refused.limit / 1_000_000:.2f}"
    wait = seconds_until_midnight(now)
    return ApiError(
        429,
        f"Daily budget reached: {whose} limit is {amount} per UTC day, and what is spent or "
        f"in flight leaves too little for this request's worst case. It resets in {wait} s.",
        "budget_exceeded",
        headers={"Retry-After": str(wait)},
    )
