"""Naming a conversation exactly once, whatever the redeliveries and however many replicas."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts import ConversationTitled, TitleRequest, TurnUsage, utc_now
from contracts.subjects import title_turn_id
from services.titler.claims import (
    Claim,
    Finished,
    LeaveToOwner,
    Publish,
    TitleClaim,
    next_step,
)
from services.titler.metrics import TITLES
from services.titler.naming import choose_title
from services.titler.ports import ClaimStore, Completion, TitleModel, TitlePublisher

__all__ = ["ClaimContended", "Titler", "title_event_id", "usage_event_id"]

log = logging.getLogger("tokenbus.titler")

# Each lost compare-and-set means another replica moved the claim on; after a few
# in a row, give the message back and look again later.
_MAX_CAS_ROUNDS = 5


class ClaimContended(Exception):
    """The claim kept changing under us; the message should come back later."""


def title_event_id(conversation_id: str) -> str:
    """One id per conversation, so the server drops any second publish of its title."""
    return f"titled-{hashlib.sha256(conversation_id.encode()).hexdigest()[:32]}"


def usage_event_id(turn_id: str, attempt: int, seq: int) -> str:
    """Per model call: a redelivery reuses it (dropped), a takeover's new calls do not."""
    return f"{title_turn_id(turn_id)}-{attempt}-{seq}"


@dataclass(frozen=True)
class Titler:
    """Everything the naming needs, passed in by the composition root."""

    claims: ClaimStore
    publisher: TitlePublisher
    model: TitleModel | None  # None: no utility model in the catalog, fallback titles only
    stale_after: timedelta
    clock: Callable[[], datetime] = utc_now

    async def handle(self, request: TitleRequest, message_sequence: int) -> None:
        """Name `request`'s conversation, or see that it is (being) named."""
        key = request.conversation_id
        for _ in range(_MAX_CAS_ROUNDS):
            stored = await self.claims.read(key)
            step = next_step(stored, message_sequence, self.clock(), self.stale_after)
            if isinstance(step, Finished):
                return
            if isinstance(step, LeaveToOwner):
                log.info("title already being made", extra={"conversation_id": key})
                return
            if isinstance(step, Publish):
                await self._publish(request, step.claim, step.revision)
                return
            if await self._claim_and_name(request, step, message_sequence):
                return
        raise ClaimContended(f"claim of {key} kept changing")

    async def _claim_and_name(
        self, request: TitleRequest, step: Claim, message_sequence: int
    ) -> bool:
        """False when another replica changed the claim first (look again)."""
        key = request.conversation_id
        pending = TitleClaim(
            state="pending",
            attempt=step.attempt,
            owner_sequence=message_sequence,
            claimed_at=self.clock(),
        )
        if step.revision is None:
            revision = await self.claims.create(key, pending)
        else:
            revision = await self.claims.replace(key, pending, step.revision)
        if revision is None:
            return False
        try:
            event = await self._name(request, step.attempt)
        except BaseException:
            # Give the claim back so the redelivery can start over at once; if even
            # that fails, the claim goes stale and is taken over later.
            released = pending.model_copy(update={"state": "released"})
            with contextlib.suppress(Exception):
                await self.claims.replace(key, released, revision)
            raise
        titled = pending.model_copy(update={"state": "titled", "event": event})
        titled_revision = await self.claims.replace(key, titled, revision)
        if titled_revision is None:
            # Taken over while we were slow: the new owner publishes its own title.
            # The calls made here are metered already, as they were really made.
            log.warning("title claim lost to a takeover", extra={"conversation_id": key})
            return True
        await self._publish(request, titled, titled_revision)
        return True

    async def _name(self, request: TitleRequest, attempt: int) -> ConversationTitled:
        async def meter(seq: int, completion: Completion) -> None:
            assert self.model is not None
            await self.publisher.publish_usage(
                request.gateway_id, _usage(request, attempt, seq, completion, self.model)
            )

        choice = await choose_title(request.user_message, self.model, meter)
        TITLES.labels(choice.source).inc()
        return ConversationTitled(
            event_id=title_event_id(request.conversation_id),
            correlation_id=request.correlation_id,
            occurred_at=self.clock(),
            tenant_id=request.tenant_id,
            conversation_id=request.conversation_id,
            turn_id=request.turn_id,
            title=choice.title,
            source=choice.source,
            model=self.model.name if self.model is not None else None,
        )

    async def _publish(self, request: TitleRequest, titled: TitleClaim, revision: int) -> None:
        assert titled.event is not None
        # The event comes from the stored claim, so every publish of it is the same message.
        await self.publisher.publish_title(request.gateway_id, titled.event)
        published = titled.model_copy(update={"state": "published"})
        # A lost race here only means another replica recorded the same fact.
        await self.claims.replace(request.conversation_id, published, revision)


def _usage(
    request: TitleRequest, attempt: int, seq: int, completion: Completion, model: TitleModel
) -> TurnUsage:
    return TurnUsage(
        event_id=usage_event_id(request.turn_id, attempt, seq),
        correlation_id=request.correlation_id,
        tenant_id=request.tenant_id,
        user_id=request.user_id,
        conversation_id=request.conversation_id,
        turn_id=title_turn_id(request.turn_id),
        seq=seq,
        attempt=attempt,
        model=model.name,
        provider_model=model.provider_model,
        input_tokens=completion.input_tokens,
        output_tokens=completion.output_tokens,
        cached_input_tokens=completion.cached_input_tokens,
        estimated=completion.estimated,
        purpose="title",
    )
