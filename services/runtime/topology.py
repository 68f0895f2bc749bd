"""The JetStream streams tokenbus needs, created or updated idempotently at start."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from contracts.subjects import (
    CHAT_REQUEST_SUBJECT,
    CONVERSATIONS_BUCKET,
    DEADLETTER_STREAM,
    DEADLETTER_SUBJECTS,
    IDEMPOTENCY_BUCKET,
    JOBS_BUCKET,
    KEYS_BUCKET,
    LIMITS_BUCKET,
    REQUESTS_STREAM,
    TITLE_REQUEST_SUBJECT,
    TITLES_BUCKET,
    TURN_SUBJECTS,
    TURNS_STREAM,
    USAGE_STREAM,
    USAGE_SUBJECTS,
)

__all__ = ["bucket_configs", "ensure_streams", "stream_configs"]

HOUR = 3600.0


def stream_configs(replay_window_s: float = 24 * HOUR, replicas: int = 1) -> list[StreamConfig]:
    return [
        StreamConfig(
            name=REQUESTS_STREAM,
            description="Chat requests waiting for a generator, title requests for the titler",
            subjects=[CHAT_REQUEST_SUBJECT, TITLE_REQUEST_SUBJECT],
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
            name=USAGE_STREAM,
            description="Usage totals per day, model, purpose and measure (server-side counters)",
            subjects=[USAGE_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            allow_msg_counter=True,
            allow_direct=True,
            # Each usage event adds under its own message id: a redelivered event
            # inside this window is dropped by the server, so nothing counts twice.
            duplicate_window=24 * HOUR,
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


def bucket_configs(
    idempotency_window_s: float = 24 * HOUR,
    replay_window_s: float = 24 * HOUR,
    replicas: int = 1,
) -> list[KeyValueConfig]:
    return [
        KeyValueConfig(
            bucket=CONVERSATIONS_BUCKET,
            description="Conversation records: messages, title, usage",
            storage=StorageType.FILE,
            replicas=replicas,
        ),
        KeyValueConfig(
            bucket=IDEMPOTENCY_BUCKET,
            description="Idempotency-Key -> the turn it started",
            ttl=idempotency_window_s,
            storage=StorageType.FILE,
            replicas=replicas,
        ),
        KeyValueConfig(
            bucket=JOBS_BUCKET,
            description="Background jobs: request, webhook, status",
            # A job's status is read from its turn's events: keep both as long.
            ttl=replay_window_s,
            storage=StorageType.FILE,
            replicas=replicas,
        ),
        KeyValueConfig(
            bucket=KEYS_BUCKET,
            description="API keys by sha256 digest: tenant, user, limits, revocation",
            storage=StorageType.FILE,
            replicas=replicas,
        ),
        KeyValueConfig(
            bucket=TITLES_BUCKET,
            description="Each conversation's one generated title (the titler's claim)",
            storage=StorageType.FILE,
            replicas=replicas,
        ),
        KeyValueConfig(
            bucket=LIMITS_BUCKET,
            description="Budget reservations and rate-limit windows, shared by gateway replicas",
            # Windows are a minute or a day; two days covers a reservation's whole life.
            ttl=2 * 24 * HOUR,
            storage=StorageType.FILE,
            replicas=replicas,
        ),
    ]


async def ensure_streams(js: JetStreamContext, replay_window_s: float = 24 * HOUR) -> None:
    """Create or update every stream and KV bucket; safe to run from every replica."""
    for config in stream_configs(replay_window_s):
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            try:
                await js.add_stream(config)
            except BadRequestError:
                # Another replica created it between our look and our add.
                await js.update_stream(config)
        else:
            await js.update_stream(config)
    for bucket in bucket_configs(replay_window_s=replay_window_s):
        try:
            await js.create_key_value(bucket)
        except BadRequestError:
            await js.key_value(bucket.bucket)
