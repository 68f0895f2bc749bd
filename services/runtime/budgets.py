"""Daily token and cost budgets that hold under concurrency, across gateway replicas.

What counts against a budget is what was spent today (the usage service's spend
counters, exact and deduplicated) plus the worst case of every turn still in
flight (reservations). Reservations of one scope and day live in ONE KV entry
changed with compare-and-set, so two gateways can never both take the last of
a budget. The usage service releases a turn's reservation after it has added
the turn's actual usage to the counters (every turn the generator ends reports
usage, zeros included); a turn that never reaches a generator (lost, or
dead-lettered) holds its reservation until its deadline passes.

Ordering that keeps the check safe: the reservation entry is read (with its
revision) BEFORE the counters. A release that lands in between changes the
revision, so the compare-and-set fails and the check is redone; a release that
lands before only makes the check count that turn twice, never zero times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict

from contracts.subjects import LIMITS_BUCKET, USAGE_STREAM, SpendScope, spend_counter_subject

__all__ = ["Amount", "Budgets", "Overspent", "seconds_until_midnight"]

_CAS_ATTEMPTS = 200


@dataclass(frozen=True, slots=True)
class Amount:
    tokens: int = 0
    micro_usd: int = 0

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.tokens + other.tokens, self.micro_usd + other.micro_usd)


@dataclass(frozen=True, slots=True)
class Overspent:
    """Why a reservation was refused."""

    measure: str  # "tokens" or "cost"
    limit: int
    committed: int  # spent + reserved, before this request


class _Reservation(BaseModel):
    model_config = ConfigDict(frozen=True)

    tokens: int
    micro_usd: int
    expires_at: datetime


class _Book(BaseModel):
    """Reservations in flight for one scope and day, by turn id."""

    model_config = ConfigDict(frozen=True)

    turns: dict[str, _Reservation] = {}

    def live(self, now: datetime) -> _Book:
        return _Book(turns={t: r for t, r in self.turns.items() if r.expires_at > now})

    def total(self) -> Amount:
        return Amount(
            sum(r.tokens for r in self.turns.values()),
            sum(r.micro_usd for r in self.turns.values()),
        )


def seconds_until_midnight(now: datetime) -> int:
    tomorrow = (now + timedelta(days=1)).date()
    midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC)
    return max(1, int((midnight - now).total_seconds()) + 1)


class Budgets:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._bucket: KeyValue | None = None

    async def _kv(self) -> KeyValue:
        if self._bucket is None:
            self._bucket = await self._js.key_value(LIMITS_BUCKET)
        return self._bucket

    async def spent(self, day: str, scope: SpendScope, scope_id: str) -> Amount:
        tokens = await self._counter(spend_counter_subject(day, scope, scope_id, "tokens"))
        cost = await self._counter(spend_counter_subject(day, scope, scope_id, "cost_micro_usd"))
        return Amount(tokens, cost)

    async def _counter(self, subject: str) -> int:
        try:
            latest = await self._js.get_last_msg(USAGE_STREAM, subject, direct=True)
        except NotFoundError:
            return 0
        return 0 if latest.data is None else int(orjson.loads(latest.data)["val"])

    async def reserve(
        self,
        day: str,
        scope: SpendScope,
        scope_id: str,
        turn_id: str,
        worst_case: Amount,
        token_limit: int | None,
        micro_usd_limit: int | None,
        expires_at: datetime,
        now: datetime,
    ) -> Overspent | None:
        """Reserve `worst_case` for `turn_id` if it fits under the limits; else say why not."""
        key = _key(day, scope, scope_id)
        for _ in range(_CAS_ATTEMPTS):
            book, revision = await self._read(key)
            book = book.live(now)
            committed = book.total() + await self.spent(day, scope, scope_id)
            if token_limit is not None and committed.tokens + worst_case.tokens > token_limit:
                return Overspent("tokens", token_limit, committed.tokens)
            if (
                micro_usd_limit is not None
                and committed.micro_usd + worst_case.micro_usd > micro_usd_limit
            ):
                return Overspent("cost", micro_usd_limit, committed.micro_usd)
            reservation = _Reservation(
                tokens=worst_case.tokens, micro_usd=worst_case.micro_usd, expires_at=expires_at
            )
            updated = _Book(turns={**book.turns, turn_id: reservation})
            if await self._write(key, updated, revision):
                return None
        raise RuntimeError(f"budget {key} kept changing under us")

    async def release(self, day: str, scope: SpendScope, scope_id: str, turn_id: str) -> None:
        """Drop a turn's reservation; nothing to do when it has none (or was released)."""
        key = _key(day, scope, scope_id)
        for _ in range(_CAS_ATTEMPTS):
            book, revision = await self._read(key)
            if turn_id not in book.turns:
                return
            remaining = {t: r for t, r in book.turns.items() if t != turn_id}
            if await self._write(key, _Book(turns=remaining), revision):
                return
        raise RuntimeError(f"budget {key} kept changing under us")

    async def _read(self, key: str) -> tuple[_Book, int | None]:
        try:
            entry = await (await self._kv()).get(key)
        except KeyNotFoundError:
            return _Book(), None
        if entry.value is None:
            return _Book(), entry.revision
        return _Book.model_validate_json(entry.value), entry.revision

    async def _write(self, key: str, book: _Book, revision: int | None) -> bool:
        """Compare-and-set; False when someone else changed the entry first."""
        data = book.model_dump_json().encode()
        kv = await self._kv()
        try:
            if revision is None:
                await kv.create(key, data)
            else:
                await kv.update(key, data, last=revision)
        except KeyWrongLastSequenceError:
            return False
        return True


def _key(day: str, scope: SpendScope, scope_id: str) -> str:
    return f"budget.{day}.{scope}.{scope_id}"
