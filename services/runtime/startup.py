"""The first lines of every service's main(): logs, traces, and a catalog that can be right.

A service whose catalog is wrong (a typo, a missing ${VAR}, a key not set) must not
start half-working: it exits with code 2 and one log line saying why, before it
takes any work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from services.runtime.catalog import CatalogError
from services.runtime.logs import configure_logging
from services.runtime.settings import ServiceSettings
from services.runtime.telemetry import setup_tracing

__all__ = ["catalog_or_exit", "start_service"]

T = TypeVar("T")


def start_service(name: str, settings: ServiceSettings) -> bool:
    """Logging and tracing set up alike everywhere; True when traces are exported."""
    configure_logging(name, settings.log_level)
    return setup_tracing(name)


def catalog_or_exit(name: str, read: Callable[[], T]) -> T:
    """What `read` makes of the catalog, or exit 2 naming what is wrong with it."""
    try:
        return read()
    except CatalogError as exc:
        logging.getLogger(f"tokenbus.{name}").error(
            "refusing to start: bad model catalog", extra={"reason": str(exc)}
        )
        raise SystemExit(2) from None
