"""Tracebacks stay out of log lines: also those a library writes into its message."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import traceback

import orjson

from services.runtime.logs import JsonFormatter

SECRET = "sk-live-SECRET"


def test_a_traceback_written_into_a_message_is_left_out() -> None:
    # As uvicorn logs a failed lifespan: starlette hands it traceback.format_exc().
    try:
        try:
            raise ConnectionError(SECRET)
        except ConnectionError:
            raise RuntimeError(f"closing failed for {SECRET}") from None
    except RuntimeError:
        message = traceback.format_exc()
    record = logging.makeLogRecord({"name": "uvicorn.error", "levelno": 40, "msg": message})
    line = JsonFormatter("gateway").format(record)
    assert "Traceback" not in line
    assert SECRET not in line
    entry = orjson.loads(line)
    assert entry["error_type"] == "RuntimeError"
    assert entry["msg"] == "(traceback left out)"


def test_a_service_that_fails_exits_with_one_log_line_and_no_traceback() -> None:
    program = textwrap.dedent(
        f"""
        from services.runtime.lifecycle import run_service
        from services.runtime.logs import configure_logging

        async def serve(stop):
            raise RuntimeError("{SECRET}")

        configure_logging("test")
        run_service(serve)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert SECRET not in done.stderr
    entry = orjson.loads(done.stderr.strip().splitlines()[-1])
    assert (entry["msg"], entry["error_type"]) == ("service failed", "RuntimeError")
