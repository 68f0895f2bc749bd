"""Every NATS subject and JetStream stream name tokenbus uses, in one place.

Turn events carry the gateway replica's routing token in their subject so that
each replica holds one long-lived subscription for the turns it relays
(no per-request subscription, no fan-out of every token to every replica),
while replay and other teams' consumers use wildcards over that token.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal, NamedTuple

__all__ = [
    "CACHE_BUCKET",
    "CANCEL_GRACE_HEADER",
    "CHAT_REQUEST_SUBJECT",
    "CONTROL_SUBJECTS",
    "CONVERSATIONS_BUCKET",
    "DEADLETTER_STREAM",
    "DEADLETTER_SUBJECTS",
    "EMBEDDING_QUEUE",
    "EMBEDDING_REQUEST_SUBJECT",
    "EMBEDDING_USAGE_GATEWAY",
    "EVENT_KINDS",
    "IDEMPOTENCY_BUCKET",
    "IMAGES_BUCKET",
    "JOBS_BUCKET",
    "KEYS_BUCKET",
    "LIMITS_BUCKET",
    "RATE_STREAM",
    "RATE_SUBJECTS",
    "REQUESTS_STREAM",
    "SEMANTIC_STREAM",
    "SEMANTIC_SUBJECTS",
    "SPEND_MEASURES",
    "SPEND_SUBJECTS",
    "TITLES_BUCKET",
    "TITLE_REQUEST_SUBJECT",
    "TURNS_STREAM",
    "TURN_SUBJECTS",
    "USAGE_MEASURES",
    "USAGE_STREAM",
    "USAGE_SUBJECTS",
    "EventKind",
    "SpendScope",
    "UsageKey",
    "attach_subject",
    "cancel_subject",
    "conversation_filter",
    "deadletter_subject",
    "gateway_turns_filter",
    "parse_control_subject",
    "parse_usage_counter_subject",
    "rate_counter_subject",
    "semantic_entry_filter",
    "semantic_entry_subject",
    "semantic_tombstone_subject",
    "spend_counter_subject",
    "tenant_usage_filter",
    "title_turn_id",
    "turn_event_subject",
    "turn_filter",
    "turn_id_from_subject",
    "turn_kind_filter",
    "usage_counter_subject",
]

PREFIX: Final = "tokenbus.v1"

REQUESTS_STREAM: Final = "TOKENBUS_REQUESTS"
CHAT_REQUEST_SUBJECT: Final = f"{PREFIX}.chat.request"
# Same work-queue stream, its own durable consumer (the titler's).
TITLE_REQUEST_SUBJECT: Final = f"{PREFIX}.title.request"

TURNS_STREAM: Final = "TOKENBUS_TURNS"
TURN_SUBJECTS: Final = f"{PREFIX}.turn.>"

USAGE_STREAM: Final = "TOKENBUS_USAGE"
USAGE_SUBJECTS: Final = f"{PREFIX}.usage.>"
SPEND_SUBJECTS: Final = f"{PREFIX}.spend.>"
RATE_STREAM: Final = "TOKENBUS_RATE"
RATE_SUBJECTS: Final = f"{PREFIX}.rate.>"
USAGE_MEASURES: Final = ("input_tokens", "output_tokens", "cached_input_tokens",
                         "cost_micro_usd", "turns")  # fmt: skip

# JetStream key-value buckets (small state; the streams above hold the history).
CONVERSATIONS_BUCKET: Final = "TOKENBUS_CONVERSATIONS"
IDEMPOTENCY_BUCKET: Final = "TOKENBUS_IDEMPOTENCY"
JOBS_BUCKET: Final = "TOKENBUS_JOBS"
KEYS_BUCKET: Final = "TOKENBUS_KEYS"  # sha256(api key) -> key record; never the key itself
TITLES_BUCKET: Final = "TOKENBUS_TITLES"  # conversation -> its one title (the titler's claim)
LIMITS_BUCKET: Final = "TOKENBUS_LIMITS"  # budget reservations in flight
CACHE_BUCKET: Final = "TOKENBUS_CACHE"  # exact-response cache (models that turn it on)
# JetStream object store: image bytes of requests, by sha256 (too big for a bus message).
IMAGES_BUCKET: Final = "TOKENBUS_IMAGES"

# Core NATS (not stored): every generator replica hears every control message.
CONTROL_SUBJECTS: Final = f"{PREFIX}.control.>"
CANCEL_GRACE_HEADER: Final = "Tokenbus-Cancel-Grace"

# Core NATS request/reply, one queue group: each request goes to one embedder replica.
EMBEDDING_REQUEST_SUBJECT: Final = f"{PREFIX}.embedding.request"
EMBEDDING_QUEUE: Final = "embedder"
# The routing token of an embedding's usage event: no gateway relays it to a client.
EMBEDDING_USAGE_GATEWAY: Final = "embeddings"

# The semantic cache's entries and tombstones: every replica that looks up rebuilds
# its in-memory index from this stream and follows it.
SEMANTIC_STREAM: Final = "TOKENBUS_SEMANTIC"
SEMANTIC_SUBJECTS: Final = f"{PREFIX}.semantic.>"

DEADLETTER_STREAM: Final = "TOKENBUS_DEADLETTER"
DEADLETTER_SUBJECTS: Final = f"{PREFIX}.deadletter.>"

EventKind = Literal["delta", "usage", "completed", "failed", "title"]
EVENT_KINDS: Final[dict[str, EventKind]] = {
    "turn.delta": "delta",
    "turn.usage": "usage",
    "turn.completed": "completed",
    "turn.failed": "failed",
    "conversation.titled": "title",
}

# tokenbus.v1.turn.<gateway_id>.<conversation_id>.<turn_id>.<kind>
_TURN_ID_TOKEN: Final = 5


def turn_event_subject(gateway_id: str, conversation_id: str, turn_id: str, kind: str) -> str:
    return f"{PREFIX}.turn.{gateway_id}.{conversation_id}.{turn_id}.{kind}"


def gateway_turns_filter(gateway_id: str) -> str:
    """What one gateway replica subscribes to: the live events of its own turns."""
    return f"{PREFIX}.turn.{gateway_id}.>"


def conversation_filter(conversation_id: str) -> str:
    """Every event of every turn of one conversation (to purge it)."""
    return f"{PREFIX}.turn.*.{conversation_id}.>"


def turn_filter(conversation_id: str, turn_id: str) -> str:
    """Every event of one turn, whichever replica relayed it (for replay)."""
    return f"{PREFIX}.turn.*.{conversation_id}.{turn_id}.*"


def turn_id_from_subject(subject: str) -> str:
    return subject.split(".", _TURN_ID_TOKEN + 1)[_TURN_ID_TOKEN]


def title_turn_id(turn_id: str) -> str:
    """The turn token under which the titler meters its own model call for `turn_id`.

    A turn of its own, so the title's usage never shows up in the chat turn's replay.
    """
    return f"title-{hashlib.sha256(turn_id.encode()).hexdigest()[:32]}"


def cancel_subject(conversation_id: str, turn_id: str) -> str:
    return f"{PREFIX}.control.cancel.{conversation_id}.{turn_id}"


def attach_subject(conversation_id: str, turn_id: str) -> str:
    """A reader (re)attached to a turn: a pending graced cancel is called off."""
    return f"{PREFIX}.control.attach.{conversation_id}.{turn_id}"


def parse_control_subject(subject: str) -> tuple[str, str]:
    """(action, turn_id) of tokenbus.v1.control.<action>.<conversation>.<turn>."""
    parts = subject.split(".")
    return parts[3], parts[-1]


def turn_kind_filter(kind: EventKind) -> str:
    """One kind of event across every turn, e.g. all usage events (for consumers)."""
    return f"{PREFIX}.turn.*.*.*.{kind}"


class UsageKey(NamedTuple):
    """What one usage total is kept per (the measure aside)."""

    tenant: str
    day: str
    user: str
    key: str  # the API key id; "-" for work no key asked for (titles)
    model: str
    purpose: str


def usage_counter_subject(key: UsageKey, measure: str) -> str:
    """A running total on a JetStream counter:
    tokenbus.v1.usage.<tenant>.<day>.<user>.<key>.<model>.<purpose>.<measure>.

    Model names may hold dots, which split subject tokens; `~` (never in a name) stands in.
    """
    model = key.model.replace(".", "~")
    return (
        f"{PREFIX}.usage.{key.tenant}.{key.day}.{key.user}.{key.key}.{model}.{key.purpose}."
        f"{measure}"
    )


def tenant_usage_filter(tenant: str) -> str:
    return f"{PREFIX}.usage.{tenant}.>"


def parse_usage_counter_subject(subject: str) -> tuple[UsageKey, str]:
    """(key, measure) of a usage counter subject."""
    tenant, day, user, key, model, purpose, measure = subject.split(".")[3:10]
    return UsageKey(tenant, day, user, key, model.replace("~", "."), purpose), measure


SpendScope = Literal["tenant", "key"]
SPEND_MEASURES: Final = ("tokens", "cost_micro_usd")


def spend_counter_subject(day: str, scope: SpendScope, scope_id: str, measure: str) -> str:
    """A day's spend of one tenant or one key, all models together (what budgets check)."""
    return f"{PREFIX}.spend.{day}.{scope}.{scope_id}.{measure}"


def rate_counter_subject(key_id: str, minute: int, measure: str) -> str:
    """Requests or tokens one API key used in one clock minute (rate limits)."""
    return f"{PREFIX}.rate.{key_id}.{minute}.{measure}"


def semantic_entry_subject(tenant: str, conversation_id: str) -> str:
    """tokenbus.v1.semantic.entry.<tenant>.<conversation>: purged when either is deleted."""
    return f"{PREFIX}.semantic.entry.{tenant}.{conversation_id}"


def semantic_entry_filter(tenant: str, conversation_id: str = "*") -> str:
    return f"{PREFIX}.semantic.entry.{tenant}.{conversation_id}"


def semantic_tombstone_subject(tenant: str) -> str:
    return f"{PREFIX}.semantic.tombstone.{tenant}"


def deadletter_subject(consumer: str) -> str:
    return f"{PREFIX}.deadletter.{consumer}"
