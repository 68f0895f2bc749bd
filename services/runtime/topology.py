"""The JetStream streams tokenbus needs, created or updated idempotently at start."""

from __future__ import annotations

from dataclasses import replace

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.subjects import (
    CACHE_BUCKET,
    CHAT_REQUEST_SUBJECT,
    CONVERSATIONS_BUCKET,
    DEADLETTER_STREAM,
    DEADLETTER_SUBJECTS,
    IDEMPOTENCY_BUCKET,
    IMAGES_BUCKET,
    JOBS_BUCKET,
    KEYS_BUCKET,
    LIMITS_BUCKET,
    RATE_STREAM,
    RATE_SUBJECTS,
    REQUESTS_STREAM,
    SEMANTIC_STREAM,
    SEMANTIC_SUBJECTS,
    SPEND_SUBJECTS,
    TITLE_REQUEST_SUBJECT,
    TITLES_BUCKET,
    TURN_SUBJECTS,
    TURNS_STREAM,
    USAGE_STREAM,
    USAGE_SUBJECTS,
)

__all__ = ["JetStreamSettings", "bucket_configs", "ensure_streams", "stream_configs"]

HOUR = 3600.0


class JetStreamSettings(BaseSettings):
    """How the streams are stored, from TOKENBUS_JETSTREAM_* (the same for every service)."""

    model_config = SettingsConfigDict(env_prefix="TOKENBUS_JETSTREAM_", extra="ignore")

    # 1 on a single server; 3 on a 3-node cluster, so a stream outlives one node.
    replicas: int = Field(default=1, ge=1, le=5)
    # Every turn's events are kept for the replay window; a cap below the disk makes a
    # traffic peak shorten that window (oldest events go first) instead of filling the
    # disk, after which every publish would fail. -1: no cap (a laptop, the tests).
    turns_max_bytes: int = Field(default=-1, ge=-1)


def stream_configs(
    replay_window_s: float = 24 * HOUR, replicas: int = 1, turns_max_bytes: int = -1
) -> list[StreamConfig]:
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
            max_bytes=turns_max_bytes,
            discard=DiscardPolicy.OLD,
            duplicate_window=120.0,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=USAGE_STREAM,
            description="Usage totals per day, model, purpose and measure (server-side counters)",
            subjects=[USAGE_SUBJECTS, SPEND_SUBJECTS],
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
            name=RATE_STREAM,
            description="Requests and tokens per API key per minute (rate limits)",
            subjects=[RATE_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            # Shared by gateway replicas; a lost window costs at most one minute's count.
            storage=StorageType.MEMORY,
            allow_msg_counter=True,
            allow_direct=True,
            max_age=180.0,
            num_replicas=replicas,
        ),
        StreamConfig(
            name=SEMANTIC_STREAM,
            description="Semantic cache entries and tombstones (each replica indexes them)",
            subjects=[SEMANTIC_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            # The longest ttl_s a catalog entry may set: older entries are expired anyway.
            max_age=24 * HOUR,
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
        KeyValueConfig(
            bucket=CACHE_BUCKET,
            description="Exact-response cache: answers to temperature-0 requests, by request hash",
            # The longest TTL a catalog entry may set; each entry also carries its own expiry.
            ttl=24 * HOUR,
            storage=StorageType.FILE,
            replicas=replicas,
        ),
    ]


def images_config(replicas: int = 1) -> ObjectStoreConfig:
    return ObjectStoreConfig(
        bucket=IMAGES_BUCKET,
        description="Image bytes of requests by sha256, read by the generator that answers",
        # A turn's deadline is minutes; a day leaves room for any catalog deadline.
        ttl=24 * HOUR,
        storage=StorageType.FILE,
        replicas=replicas,
    )


async def ensure_streams(
    js: JetStreamContext, replay_window_s: float = 24 * HOUR, replicas: int | None = None
) -> None:
    """Create or update every stream and KV bucket; safe to run from every replica.

    `replicas` defaults to TOKENBUS_JETSTREAM_REPLICAS (1). On a cluster an existing
    stream or bucket is brought to that replica count in place. The turns stream's
    cap comes from TOKENBUS_JETSTREAM_TURNS_MAX_BYTES.
    """
    settings = JetStreamSettings()
    if replicas is None:
        replicas = settings.replicas
    configs = stream_configs(replay_window_s, replicas, settings.turns_max_bytes)
    for config in configs:
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
    for bucket in bucket_configs(replay_window_s=replay_window_s, replicas=replicas):
        try:
            await js.create_key_value(bucket)
        except BadRequestError:
            await js.key_value(bucket.bucket)
            await _ensure_replicas(js, f"KV_{bucket.bucket}", replicas)
    try:
        await js.create_object_store(IMAGES_BUCKET, config=images_config(replicas))
    except BadRequestError:
        await _ensure_replicas(js, f"OBJ_{IMAGES_BUCKET}", replicas)


async def _ensure_replicas(js: JetStreamContext, stream: str, replicas: int) -> None:
    # A bucket made earlier keeps its own settings; only its replica count follows ours.
    info = await js.stream_info(stream)
    if info.config.num_replicas != replicas:
        await js.update_stream(replace(info.config, num_replicas=replicas))
