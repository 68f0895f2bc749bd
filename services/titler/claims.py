"""The claim that makes one titler, once, name a conversation: its record and what to do next.

One record per conversation in the TOKENBUS_TITLES bucket, written only by
compare-and-set, moves `pending` -> `titled` -> `published`. A `pending` claim
whose owner is gone (its message came back, or it has been silent too long) is
taken over as the next attempt; `released` is a claim its owner gave back
after a failure, open to the next delivery at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts import ConversationTitled

__all__ = [
    "Claim",
    "ClaimState",
    "Finished",
    "LeaveToOwner",
    "Publish",
    "Step",
    "StoredClaim",
    "TitleClaim",
    "next_step",
]

ClaimState = Literal["pending", "released", "titled", "published"]


class TitleClaim(BaseModel):
    """The stored record (JSON in the KV bucket)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    state: ClaimState
    attempt: int = Field(ge=1, description="Grows on each takeover; part of usage event ids")
    owner_sequence: int = Field(description="Stream sequence of the request message that holds it")
    claimed_at: datetime
    event: ConversationTitled | None = Field(default=None, description="Set once titled")


@dataclass(frozen=True, slots=True)
class StoredClaim:
    claim: TitleClaim
    revision: int


@dataclass(frozen=True, slots=True)
class Claim:
    """Take the claim as `attempt`: create it (revision None) or replace it at `revision`."""

    attempt: int
    revision: int | None


@dataclass(frozen=True, slots=True)
class Publish:
    """The title is chosen and stored (`claim.event`); make sure its event is on the bus."""

    claim: TitleClaim
    revision: int


@dataclass(frozen=True, slots=True)
class LeaveToOwner:
    """Another request message holds a live claim; it will publish the title."""


@dataclass(frozen=True, slots=True)
class Finished:
    """The title event is already published."""


Step = Claim | Publish | LeaveToOwner | Finished


def next_step(
    stored: StoredClaim | None, message_sequence: int, now: datetime, stale_after: timedelta
) -> Step:
    """What the delivery of request message `message_sequence` must do, given the stored claim."""
    if stored is None:
        return Claim(attempt=1, revision=None)
    claim = stored.claim
    if claim.state == "published":
        return Finished()
    if claim.state == "titled" and claim.event is not None:
        return Publish(claim, stored.revision)
    owner_gone = (
        claim.state != "pending"
        # Our own message back again: the delivery that claimed it did not finish
        # (crashed, or nacked after a failure), so nobody else is working on it.
        or claim.owner_sequence == message_sequence
        # Silent longer than any live owner can take: it died holding the claim.
        or now - claim.claimed_at >= stale_after
    )
    if owner_gone:
        return Claim(attempt=claim.attempt + 1, revision=stored.revision)
    # A second copy of the request: the owner's message stays unacked until the
    # title is published, and comes back if the owner dies, so this copy can go.
    return LeaveToOwner()
