"""The JetStream streams tokenbus needs, created or updated idempotently at start."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from contracts.subjects import (
    CHAT_REQUEST_SUBJECT,
    DEADLETTER_STREAM,
    DEADLETTER_SUBJECTS,
    REQUESTS_STREAM,
    TURN_SUBJECTS,
    TURNS_STREAM,
)

__all__ = ["ensure_streams", "stream_configs"]

HOUR = 3600.0


def stream_configs(replay_window_s: float = 24 * HOUR, replicas: int = 1) -> list[StreamConfig]:
    return [
        StreamConfig(
            name=REQUESTS_STREAM,
            description="Chat requests waiting for a generator",
            subjects=[CHAT_REQUEST_SUBJECT],
            # Work-queue retention: a request is gone once a generator acks it.
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            max_age=replay_window_s,
            duplicate_window=120.0,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=TURNS_STREAM,
            description="Every event of every turn, replayable for resume and other teams",
            subjects=[TURN_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=replay_window_s,
            duplicate_window=120.0,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=DEADLETTER_STREAM,
            description="Messages a consumer refused for good, with the reason",
            subjects=[DEADLETTER_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=14 * 24 * HOUR,
            duplicate_window=120.0,
            num_replicas=replicas,
        ),
    ]


async def ensure_streams(js: JetStreamContext, replay_window_s: float = 24 * HOUR) -> None:
    for config in stream_configs(replay_window_s):
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
