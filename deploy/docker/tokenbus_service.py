#!/usr/bin/env python3
"""Container entrypoint: `tokenbus-service <command> [args...]` runs one tokenbus process.

The image installs this file as /opt/venv/bin/tokenbus-service. Commands:

  gateway | generator | titler | usage | embedder
                                         a service (its settings come from TOKENBUS_*)
  model [--host H --port P ...]          the embedded llama.cpp model server
  probe http URL                         exit 0 when URL answers 200 (healthchecks)
  probe consumer SERVICE                 exit 0 when the bus answers with this service's
                                         settings and its durable consumer exists
  probe alive SERVICE                    exit 0 when PID 1 is SERVICE and still running

The workers (generator, titler, usage) serve no HTTP, hence the probes.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

# Command -> the module `python -m` runs. A test checks that every command the
# compose file and the Kubernetes manifests use is one of these.
SERVICES: dict[str, str] = {
    "gateway": "services.gateway.main",
    "generator": "services.generator.main",
    "titler": "services.titler.main",
    "usage": "services.usage.main",
    "embedder": "services.embedder.main",
    "model": "services.runtime.model_server",
}

# Worker -> (settings class, stream, durable consumer). A test checks these
# against each service's main module, so a renamed consumer cannot slip by.
CONSUMERS: dict[str, tuple[str, str, str]] = {
    "generator": ("services.generator.config:GeneratorSettings", "TOKENBUS_REQUESTS", "generator"),
    "titler": ("services.titler.config:TitlerSettings", "TOKENBUS_REQUESTS", "titler"),
    "usage": ("services.usage.config:UsageSettings", "TOKENBUS_TURNS", "usage"),
}

PROBES = ("http", "consumer", "alive")

_USAGE = (
    f"usage: tokenbus-service {{{'|'.join(SERVICES)}}} [args...]\n"
    f"       tokenbus-service probe {{{'|'.join(PROBES)}}} ARG"
)
_EX_USAGE = 64
_TIMEOUT_S = 3.0


def probe_http(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


async def _consumer_exists(nats_url: str, stream: str, durable: str) -> bool:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(
        nats_url, connect_timeout=_TIMEOUT_S, allow_reconnect=False, max_reconnect_attempts=0
    )
    try:
        await nc.jetstream(timeout=_TIMEOUT_S).consumer_info(stream, durable)
        return True
    except NotFoundError:
        return False
    finally:
        await nc.close()


def probe_consumer(service: str) -> int:
    if service not in CONSUMERS:
        print(f"tokenbus-service: no consumer for {service!r}", file=sys.stderr)
        return _EX_USAGE
    settings_path, stream, durable = CONSUMERS[service]
    module, _, name = settings_path.partition(":")
    settings = getattr(importlib.import_module(module), name)()
    try:
        found = asyncio.run(
            asyncio.wait_for(_consumer_exists(settings.nats_url, stream, durable), 2 * _TIMEOUT_S)
        )
    except Exception as exc:  # any failure to reach the bus means "not ready"
        print(f"tokenbus-service: bus unreachable ({type(exc).__name__})", file=sys.stderr)
        return 1
    return 0 if found else 1


def probe_alive(service: str, proc: Path = Path("/proc/1")) -> int:
    """PID 1 runs SERVICE's module and is neither a zombie nor stopped."""
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return 1
    module = SERVICES.get(service, "").encode()
    return 0 if module and module in argv and state not in ("Z", "T", "X") else 1


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE, file=sys.stderr if not argv else sys.stdout)
        return _EX_USAGE if not argv else 0
    command, *rest = argv
    if command == "probe":
        if len(rest) != 2 or rest[0] not in PROBES:
            print(_USAGE, file=sys.stderr)
            return _EX_USAGE
        kind, arg = rest
        return {"http": probe_http, "consumer": probe_consumer, "alive": probe_alive}[kind](arg)
    module = SERVICES.get(command)
    if module is None:
        print(f"tokenbus-service: unknown command {command!r}\n{_USAGE}", file=sys.stderr)
        return _EX_USAGE
    # exec: the service becomes PID 1 and gets SIGTERM from the runtime directly.
    os.execv(sys.executable, [sys.executable, "-m", module, *rest])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
