"""`tokenbus up`'s dev key works from the moment the gateway answers ready."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from services.runtime.embedded_nats import free_port
from tests.support import stop_process

KEY = "sk-dev-key-test-0123456789abcdef"


def test_the_dev_key_is_accepted_as_soon_as_readyz_answers(tmp_path: Path) -> None:
    # A client that waits for /readyz (a load balancer, a script, the benchmark)
    # and sends at once must not meet a gateway that does not know the key yet.
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "services.cli.main", "up"),
            *("--port", str(port), "--nats-port", "0", "--state-dir", str(tmp_path)),
            # No model is asked for: the upstream need not exist.
            *("--upstream-url", "http://127.0.0.1:9/v1", "--model", "m"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TOKENBUS_DEV_API_KEY": KEY},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=5) as http:
            deadline = time.monotonic() + 120
            while True:
                assert process.poll() is None, "tokenbus up exited"
                assert time.monotonic() < deadline, "the gateway never answered ready"
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.005)
            models = http.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        assert models.status_code == 200, models.text
        assert [m["id"] for m in models.json()["data"]] == ["m"]
    finally:
        stop_process(process)
