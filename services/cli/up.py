"""`tokenbus up`: the whole system on one machine, as separate processes.

nats-server (JetStream, file storage under the state dir), the embedded model
server (unless an upstream is given), generator, titler, usage, and the gateway.
Any of them that dies is restarted (see services.cli.supervisor), nats-server on
the same ports and with the same store, so the others reconnect to it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import nats
from nats.js.errors import NotFoundError

from contracts.subjects import REQUESTS_STREAM, TURNS_STREAM
from services.cli.keys import ensure_dev_key
from services.cli.supervisor import ChildSpec, StackFailed, Supervisor
from services.runtime.catalog import CatalogError, load_catalog
from services.runtime.embedded_nats import NatsServerProcess, free_port
from services.runtime.model_server import DEFAULT_ALIAS

__all__ = ["UpOptions", "run_up"]

_CONSUMERS = {"generator": REQUESTS_STREAM, "titler": REQUESTS_STREAM, "usage": TURNS_STREAM}


@dataclass(frozen=True)
class UpOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    state_dir: Path = Path(".tokenbus")
    nats_port: int = 4222
    model_port: int = 8081
    upstream_url: str | None = None
    upstream_provider: Literal["openai-compatible", "anthropic"] = "openai-compatible"
    model: str | None = None
    catalog: Path | None = None
    generators: int = 1


def _port(value: int) -> int:
    return value or free_port()


async def _http_ok(url: str) -> bool:
    async with httpx.AsyncClient(timeout=1.0) as client:
        return (await client.get(url)).status_code == 200


async def _no_log(exc: Exception) -> None:
    """A probe's failure is its answer: nats-py's default would log it with a traceback."""


async def _has_consumer(nats_url: str, durable: str) -> bool:
    nc = await nats.connect(nats_url, connect_timeout=1, allow_reconnect=False, error_cb=_no_log)
    try:
        await nc.jetstream().consumer_info(_CONSUMERS[durable], durable)
        return True
    except NotFoundError:
        return False
    finally:
        await nc.close()


@dataclass(frozen=True)
class Stack:
    """The processes to run, in start order, and where their parts answer."""

    nats: NatsServerProcess
    specs: list[ChildSpec]
    gateway_url: str
    upstream_url: str
    metrics_urls: dict[str, str]
    """Each process's Prometheus endpoint, by child name."""


def stack(options: UpOptions) -> Stack:
    nats_server = NatsServerProcess(
        options.state_dir / "nats", port=_port(options.nats_port), host=options.host
    )
    python = sys.executable
    specs = [
        ChildSpec(
            "nats",
            nats_server.command(),
            # One Go scheduler thread: a message then wakes no second thread (futex
            # handoffs were most of the server's CPU per token: bench/NOTES.md).
            env={"GOMAXPROCS": os.environ.get("GOMAXPROCS", "1")},
            ready=lambda: _tcp_ok(options.host, nats_server.port),
        )
    ]
    catalog_env: dict[str, str] = {}
    if options.catalog is not None:
        catalog_env["TOKENBUS_CATALOG_PATH"] = str(options.catalog.resolve())
    if options.upstream_url is None:
        model_port = _port(options.model_port)
        model_url = f"http://{options.host}:{model_port}"
        specs.append(
            ChildSpec(
                "model",
                [
                    python,
                    "-m",
                    "services.runtime.model_server",
                    "--host",
                    options.host,
                    "--port",
                    str(model_port),
                    "--alias",
                    DEFAULT_ALIAS,
                ],
                ready=lambda: _http_ok(f"{model_url}/health"),
            )
        )
        upstream_url = f"{model_url}/v1"
        catalog_env["TOKENBUS_LOCAL_MODEL_URL"] = model_url
    else:
        upstream_url = options.upstream_url
        catalog_env["TOKENBUS_CATALOG_PATH"] = str(
            _single_model_catalog(
                options.state_dir,
                upstream_url,
                options.model or "upstream",
                options.upstream_provider,
            )
        )

    bus_env = {"TOKENBUS_NATS_URL": nats_server.url, **catalog_env}
    workers = [(f"generator{n}" if options.generators > 1 else "generator", "generator")
               for n in range(1, options.generators + 1)]  # fmt: skip
    metrics_urls: dict[str, str] = {}
    for name, service in [*workers, ("titler", "titler"), ("usage", "usage")]:
        # A port of its own per process: generator replicas must not collide.
        metrics_port = free_port()
        metrics_urls[name] = f"http://{options.host}:{metrics_port}/metrics"
        specs.append(
            ChildSpec(
                name,
                [python, "-m", f"services.{service}.main"],
                env={
                    **bus_env,
                    f"TOKENBUS_{service.upper()}_METRICS_HOST": options.host,
                    f"TOKENBUS_{service.upper()}_METRICS_PORT": str(metrics_port),
                },
                ready=functools.partial(_has_consumer, nats_server.url, service),
            )
        )
    if _serves_embeddings(catalog_env):
        # No durable consumer to wait for: it answers requests; its /metrics opens once
        # the model is loaded and its subscription is live.
        metrics_port = free_port()
        metrics_urls["embedder"] = embedder_metrics = (
            f"http://{options.host}:{metrics_port}/metrics"
        )
        specs.append(
            ChildSpec(
                "embedder",
                [python, "-m", "services.embedder.main"],
                env={
                    **bus_env,
                    "TOKENBUS_EMBEDDER_METRICS_HOST": options.host,
                    "TOKENBUS_EMBEDDER_METRICS_PORT": str(metrics_port),
                },
                ready=lambda: _http_ok(embedder_metrics),
            )
        )
    port = _port(options.port)
    gateway_url = f"http://{options.host}:{port}"
    specs.append(
        ChildSpec(
            "gateway",
            [python, "-m", "services.gateway.main"],
            env={
                **bus_env,
                "TOKENBUS_GATEWAY_HOST": options.host,
                "TOKENBUS_GATEWAY_PORT": str(port),
            },
            ready=lambda: _http_ok(f"{gateway_url}/readyz"),
            stop_timeout_s=35.0,
        )
    )
    metrics_urls = {"gateway": f"{gateway_url}/metrics", **metrics_urls}
    return Stack(nats_server, specs, gateway_url, upstream_url, metrics_urls)


def _serves_embeddings(catalog_env: dict[str, str]) -> bool:
    """Whether the catalog the stack runs has an embedding model (then it runs an embedder)."""
    path = catalog_env.get("TOKENBUS_CATALOG_PATH")
    try:
        catalog = load_catalog(Path(path) if path else None)
    except CatalogError:
        return False  # the services themselves refuse it, saying why
    return bool(catalog.embedding_models())


def _single_model_catalog(
    state_dir: Path, base_url: str, model: str, provider: str = "openai-compatible"
) -> Path:
    """A catalog of one model, for `--upstream-url` (and `--upstream-provider`)."""
    path = state_dir / "catalog.toml"
    path.write_text(
        f"[models.{json.dumps(model)}]\n"
        f"provider = {json.dumps(provider)}\n"
        f"base_url = {json.dumps(base_url)}\n"
        f"upstream_model = {json.dumps(model)}\n"
        "context_window = 32768\n"
        "max_output_tokens = 8192\n"
    )
    return path


async def _tcp_ok(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    return True


async def run_up(options: UpOptions) -> int:
    options.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        if options.catalog is not None:
            load_catalog(options.catalog)  # refuse a bad catalog before starting anything
    except CatalogError as exc:
        print(f"tokenbus: {exc}", file=sys.stderr)
        return 2
    planned = stack(options)
    supervisor = Supervisor(options.state_dir / "logs", pid_file=options.state_dir / "pids.json")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        dev_key_file = options.state_dir / "dev-api-key"
        dev_key = ""
        for spec in planned.specs:
            if spec.name == "gateway":
                # Issued before the gateway starts: once it answers ready, the key
                # works (a client polling /readyz got 401s for a moment otherwise).
                dev_key = await ensure_dev_key(
                    planned.nats.url, dev_key_file, os.environ.get("TOKENBUS_DEV_API_KEY") or None
                )
            await supervisor.start(spec)
            if stop.is_set():
                return 0
        print(f"tokenbus bus: {planned.nats.url}", flush=True)
        print(f"tokenbus dev API key: {dev_key}  (saved in {dev_key_file})", flush=True)
        print(f"tokenbus model upstream: {planned.upstream_url}", flush=True)
        metrics_file = options.state_dir / "metrics.json"
        metrics_file.write_text(json.dumps(planned.metrics_urls, indent=2))
        print(f"tokenbus metrics: {metrics_file}", flush=True)
        print(f"tokenbus is up: {planned.gateway_url}  (Ctrl-C to stop)", flush=True)
        gave_up = asyncio.create_task(supervisor.supervise())
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({gave_up, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if gave_up in done:
            print(
                f"tokenbus: {gave_up.result()}; stopping the stack "
                f"(see {options.state_dir / 'logs'})",
                file=sys.stderr,
                flush=True,
            )
            code = 1
        for task in (gave_up, stopped):
            task.cancel()
        await asyncio.gather(gave_up, stopped, return_exceptions=True)
    except StackFailed as exc:
        print(f"tokenbus: {exc}; see {options.state_dir / 'logs'}", file=sys.stderr)
        code = 1
    finally:
        await supervisor.stop_all()
        print("tokenbus stopped", flush=True)
    return code
