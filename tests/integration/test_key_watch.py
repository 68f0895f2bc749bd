"""The gateway's key lookups from a watched copy of the keys bucket: current, revocations too."""

from __future__ import annotations

import asyncio

from contracts import Limits
from contracts.subjects import KEYS_BUCKET
from services.runtime.bus import Bus
from services.runtime.keys import KeyStore, WatchedKeyStore


async def test_watched_lookups_follow_issues_revocations_and_tenant_limits(bus: Bus) -> None:
    kv = await bus.js.key_value(KEYS_BUCKET)
    writer = KeyStore(kv)  # the CLI's side: another process in production
    before = await writer.issue("acme", "ann")
    watched = WatchedKeyStore(kv)
    await watched.start()
    try:
        assert (found := await watched.find(before.key)) is not None
        assert found.key_id == before.record.key_id
        # Issued after the copy was made: found at once (read from KV if not there yet).
        after = await writer.issue("acme", "bob")
        assert await watched.find(after.key) is not None
        assert await watched.find("tb_" + "x" * 40) is None

        await writer.revoke(before.record.key_id)
        await writer.set_tenant_limits("acme", Limits(requests_per_minute=7))
        async with asyncio.timeout(5):
            while (record := await watched.find(before.key)) is None or record.revoked_at is None:
                await asyncio.sleep(0.01)
            while (await watched.tenant("acme")).limits.requests_per_minute != 7:
                await asyncio.sleep(0.01)
        assert (await watched.tenant("nobody")).tenant_id == "nobody"
    finally:
        await watched.stop()
