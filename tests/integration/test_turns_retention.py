"""A capped turns stream on a real nats-server: a traffic peak shortens the replay window,
it never makes a publish fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.subjects import TURNS_STREAM, turn_event_subject
from services.runtime.bus import connect
from services.runtime.topology import ensure_streams
from tests.support import running_nats

CAP = 64 * 1024


async def test_a_capped_turns_stream_drops_its_oldest_events_and_takes_every_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_nats(tmp_path) as url:  # its own server: the cap must not reach other tests
        bus = await connect(url, name="retention-test")
        try:
            await ensure_streams(bus.js)  # as first deployed: no cap
            assert (await bus.js.stream_info(TURNS_STREAM)).config.max_bytes == -1

            # The operator sets a cap later; the next start applies it in place.
            monkeypatch.setenv("TOKENBUS_JETSTREAM_TURNS_MAX_BYTES", str(CAP))
            await ensure_streams(bus.js)
            assert (await bus.js.stream_info(TURNS_STREAM)).config.max_bytes == CAP

            payload = b"x" * 1000
            for n in range(300):  # about 300 KB through a 64 KB stream
                subject = turn_event_subject("gw", "conv", f"turn{n}", "delta")
                ack = await bus.js.publish(subject, payload)
                assert ack.seq == n + 1

            state = (await bus.js.stream_info(TURNS_STREAM)).state
            assert state.bytes <= CAP
            assert state.last_seq == 300
            assert state.first_seq > 1  # the oldest events made room
            newest = turn_event_subject("gw", "conv", "turn299", "delta")
            assert (await bus.js.get_last_msg(TURNS_STREAM, newest)).data == payload
        finally:
            await bus.close()
