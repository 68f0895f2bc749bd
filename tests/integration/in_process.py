"""The gateway app in this process, on a real nats-server: for answers that need no model."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from contracts.subjects import KEYS_BUCKET, REQUESTS_STREAM
from services.gateway.config import GatewaySettings
from services.gateway.main import create_app
from services.runtime.bus import connect
from services.runtime.catalog import Catalog, parse_catalog
from services.runtime.keys import KeyStore
from services.runtime.topology import ensure_streams

# Nothing is ever called at base_url: these tests stop before a request is queued.
CATALOG = """
[models.small]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "small"
context_window = 4096
max_output_tokens = 1024

[models.namer]
provider = "openai-compatible"
base_url = "http://127.0.0.1:9/v1"
upstream_model = "namer"
role = "utility"
"""


def gateway_settings(nats_url: str, **settings: Any) -> GatewaySettings:
    options: dict[str, Any] = {"nats_url": nats_url, **settings}
    return GatewaySettings(**options)


def gateway_app(nats_url: str, catalog: Catalog | None = None, **settings: Any) -> FastAPI:
    return create_app(gateway_settings(nats_url, **settings), catalog or parse_catalog(CATALOG))


@dataclass(frozen=True)
class Gateway:
    http: httpx.AsyncClient
    app: FastAPI
    nats_url: str

    async def requests_published(self) -> int:
        """The requests stream's last sequence: what ever reached a generator's queue."""
        bus = await connect(self.nats_url, name="tests-requests")
        try:
            return int((await bus.js.stream_info(REQUESTS_STREAM)).state.last_seq)
        finally:
            await bus.close()


async def issue_key(nats_url: str) -> str:
    bus = await connect(nats_url, name="tests-keys")
    try:
        await ensure_streams(bus.js)
        issued = await KeyStore(await bus.js.key_value(KEYS_BUCKET)).issue("edge", "ada")
        return issued.key
    finally:
        await bus.close()


@contextlib.asynccontextmanager
async def running_gateway(
    nats_url: str, catalog: Catalog | None = None, **settings: Any
) -> AsyncIterator[Gateway]:
    """The app with its lifespan run (bus, relay, recorder), and a client holding a key."""
    key = await issue_key(nats_url)
    app = gateway_app(nats_url, catalog, **settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"Authorization": f"Bearer {key}"},
        ) as http,
    ):
        yield Gateway(http, app, nats_url)
