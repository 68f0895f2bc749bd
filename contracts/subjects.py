"""Every NATS subject and JetStream stream name tokenbus uses, in one place.

Turn events carry the gateway replica's routing token in their subject so that
each replica holds one long-lived subscription for the turns it relays
(no per-request subscription, no fan-out of every token to every replica),
while replay and other teams' consumers use wildcards over that token.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "CANCEL_SUBJECTS",
    "CHAT_REQUEST_SUBJECT",
    "DEADLETTER_STREAM",
    "DEADLETTER_SUBJECTS",
    "EVENT_KINDS",
    "REQUESTS_STREAM",
    "TURNS_STREAM",
    "TURN_SUBJECTS",
    "EventKind",
    "cancel_subject",
    "deadletter_subject",
    "gateway_turns_filter",
    "turn_event_subject",
    "turn_filter",
    "turn_id_from_cancel_subject",
    "turn_id_from_subject",
    "turn_kind_filter",
]

PREFIX: Final = "tokenbus.v1"

REQUESTS_STREAM: Final = "TOKENBUS_REQUESTS"
CHAT_REQUEST_SUBJECT: Final = f"{PREFIX}.chat.request"

TURNS_STREAM: Final = "TOKENBUS_TURNS"
TURN_SUBJECTS: Final = f"{PREFIX}.turn.>"

# Core NATS (not stored): every generator replica hears every cancel.
CANCEL_SUBJECTS: Final = f"{PREFIX}.control.cancel.>"

DEADLETTER_STREAM: Final = "TOKENBUS_DEADLETTER"
DEADLETTER_SUBJECTS: Final = f"{PREFIX}.deadletter.>"

EventKind = Literal["delta", "usage", "completed", "failed"]
EVENT_KINDS: Final[dict[str, EventKind]] = {
    "turn.delta": "delta",
    "turn.usage": "usage",
    "turn.completed": "completed",
    "turn.failed": "failed",
}

# tokenbus.v1.turn.<gateway_id>.<conversation_id>.<turn_id>.<kind>
_TURN_ID_TOKEN: Final = 5


def turn_event_subject(gateway_id: str, conversation_id: str, turn_id: str, kind: str) -> str:
    return f"{PREFIX}.turn.{gateway_id}.{conversation_id}.{turn_id}.{kind}"


def gateway_turns_filter(gateway_id: str) -> str:
    """What one gateway replica subscribes to: the live events of its own turns."""
    return f"{PREFIX}.turn.{gateway_id}.>"


def turn_filter(conversation_id: str, turn_id: str) -> str:
    """Every event of one turn, whichever replica relayed it (for replay)."""
    return f"{PREFIX}.turn.*.{conversation_id}.{turn_id}.*"


def turn_id_from_subject(subject: str) -> str:
    return subject.split(".", _TURN_ID_TOKEN + 1)[_TURN_ID_TOKEN]


def cancel_subject(conversation_id: str, turn_id: str) -> str:
    return f"{PREFIX}.control.cancel.{conversation_id}.{turn_id}"


def turn_id_from_cancel_subject(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


def turn_kind_filter(kind: EventKind) -> str:
    """One kind of event across every turn, e.g. all usage events (for consumers)."""
    return f"{PREFIX}.turn.*.*.*.{kind}"


def deadletter_subject(consumer: str) -> str:
    return f"{PREFIX}.deadletter.{consumer}"
