"""`tokenbus keys`: issue, list and revoke API keys; the dev key `tokenbus up` hands out."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path

from contracts import ApiKeyRecord, Limits
from contracts.subjects import KEYS_BUCKET
from services.runtime.bus import connect
from services.runtime.keys import KeyStore
from services.runtime.semantic_tombstones import forget_semantic_entries
from services.runtime.topology import ensure_streams

__all__ = ["add_keys_commands", "ensure_dev_key", "run_keys"]

DEV_TENANT = "dev"
DEV_USER = "dev"


@asynccontextmanager
async def _store(nats_url: str) -> AsyncIterator[KeyStore]:
    bus = await connect(nats_url, name="tokenbus-keys")
    try:
        await ensure_streams(bus.js)
        yield KeyStore(await bus.js.key_value(KEYS_BUCKET))
    finally:
        await bus.close()


def _read_key(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def _write_key(path: Path, key: str) -> None:
    path.write_text(key + "\n")
    path.chmod(0o600)


async def ensure_dev_key(nats_url: str, path: Path, chosen: str | None = None) -> str:
    """The key in `path` (or `chosen`) if it works on this bus; else it is issued now.

    `chosen` ($TOKENBUS_DEV_API_KEY) gives scripts and benchmarks a key they know
    in advance; without it a random key is made once and kept in `path`.
    """
    async with _store(nats_url) as keys:
        # A tiny local file, read once at start: not worth a thread.
        key = chosen or _read_key(path)
        if key is not None:
            record = await keys.find(key)
            if record is not None and record.revoked_at is None:
                _write_key(path, key)
                return key
        issued = await keys.issue(DEV_TENANT, DEV_USER, name="dev key (tokenbus up)", key=chosen)
    _write_key(path, issued.key)
    return issued.key


def _money(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {value!r}") from None
    if amount <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return amount


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _limit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpm", type=_positive, help="requests per minute")
    parser.add_argument("--tpm", type=_positive, help="tokens per minute")
    parser.add_argument("--daily-tokens", type=_positive, help="tokens per UTC day")
    parser.add_argument("--daily-cost-usd", type=_money, help="spend per UTC day, in USD")


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(
        requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm,
        daily_tokens=args.daily_tokens,
        daily_cost_usd=args.daily_cost_usd,
    )


def add_keys_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="issue, list and revoke API keys")
    keys.add_argument(
        "--nats-url",
        default=os.environ.get("TOKENBUS_NATS_URL", "nats://127.0.0.1:4222"),
        help="the bus (default $TOKENBUS_NATS_URL or nats://127.0.0.1:4222)",
    )
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="issue a key; it is shown once, here")
    create.add_argument("--tenant", required=True)
    create.add_argument("--user", required=True)
    create.add_argument("--name", default="")
    _limit_options(create)
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--tenant")
    revoke = actions.add_parser("revoke", help="revoke a key by its id (key_...)")
    revoke.add_argument("key_id")
    tenant = actions.add_parser("tenant-limits", help="set a tenant's own daily budget")
    tenant.add_argument("tenant")
    _limit_options(tenant)
    forget = actions.add_parser(
        "forget-cache", help="remove all of a tenant's answers from the semantic cache"
    )
    forget.add_argument("tenant")


def _row(record: ApiKeyRecord) -> str:
    state = "revoked" if record.revoked_at else "active"
    limits = record.limits.model_dump(exclude_none=True)
    shown = " ".join(f"{k}={v}" for k, v in limits.items()) or "no limits"
    return (
        f"{record.key_id}  {record.hint}…  tenant={record.tenant_id}  user={record.user_id}  "
        f"{state}  {shown}  {record.name}"
    )


async def _forget_cache(nats_url: str, tenant: str) -> int:
    bus = await connect(nats_url, name="tokenbus-keys")
    try:
        await ensure_streams(bus.js)
        await forget_semantic_entries(bus.js, tenant)
    finally:
        await bus.close()
    print(f"tenant {tenant}: semantic cache entries removed")
    return 0


async def run_keys(args: argparse.Namespace) -> int:
    if args.action == "forget-cache":
        return await _forget_cache(args.nats_url, args.tenant)
    async with _store(args.nats_url) as keys:
        if args.action == "create":
            try:
                issued = await keys.issue(args.tenant, args.user, args.name, _limits(args))
            except ValueError as exc:  # a tenant or user that is not a subject token
                print(f"tokenbus keys: {exc}", file=sys.stderr)
                return 2
            print(_row(issued.record))
            print(f"key (shown once, store it now): {issued.key}")
            return 0
        if args.action == "list":
            for record in await keys.list(args.tenant):
                print(_row(record))
            return 0
        if args.action == "revoke":
            revoked = await keys.revoke(args.key_id)
            if revoked is None:
                print(f"tokenbus keys: no key {args.key_id}", file=sys.stderr)
                return 1
            print(_row(revoked))
            return 0
        if args.action == "tenant-limits":
            tenant = await keys.set_tenant_limits(args.tenant, _limits(args))
            print(f"tenant {tenant.tenant_id}: {tenant.limits.model_dump(exclude_none=True)}")
            return 0
    return 2
