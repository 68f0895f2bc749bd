"""Running a service until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

import uvloop

__all__ = ["run_service", "until_stopped"]


def run_service(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` on uvloop; `stop` is set by SIGTERM/SIGINT for a graceful exit.

    A failure that escapes `main` ends the process with code 1 and one log line
    naming its type, not a traceback on stderr (tracebacks stay out of logs).
    """

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        uvloop.run(runner())
    except Exception:
        logging.getLogger("tokenbus.service").critical("service failed", exc_info=True)
        raise SystemExit(1) from None


async def until_stopped(stop: asyncio.Event, work: asyncio.Task[None]) -> None:
    """Wait for a stop signal, or for `work` to end on its own (re-raising its error)."""
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({stopper, work}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if work in done:
        work.result()
