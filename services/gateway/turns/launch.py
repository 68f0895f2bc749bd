"""Starting a turn: the one path every API surface takes from its command to its events.

A route decodes its wire format into a `TurnOrder` and renders what comes back;
everything between is here, in one order, each step undone if a later one fails
(undo callbacks on an AsyncExitStack, run last-in first-out):

1. claim the Idempotency-Key, if the client sent one: a retry finds the first
   request's turn and is answered from it (`Replayed`), running nothing;
2. check the queue: 503 `overloaded` while generators lag;
3. prepare the ChatRequest (a conversation also records the message and reserves
   itself for the turn, and registers that undo);
4. admit it: the key's rate limits, then budget reservations;
5. store its images where the generator reads them;
6. hand it over: publish it and follow its live events, or record it as a job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel

from contracts import ChatRequest
from services.gateway.caller import Caller
from services.gateway.catalog import chat_model
from services.gateway.state import GatewayState
from services.gateway.turns.idempotency import ClaimedTurn
from services.gateway.turns.items import TurnFeed, TurnRef
from services.gateway.turns.live import TurnEvents, start_turn, store_images
from services.gateway.turns.replay import ReplayedTurn

__all__ = [
    "Idempotency",
    "Prepared",
    "Replayed",
    "Started",
    "TurnOrder",
    "launch_live",
    "launch_turn",
]


class Prepared(Protocol):
    """What step 3 makes: the request to publish and the image bytes it names."""

    @property
    def request(self) -> ChatRequest: ...

    @property
    def images(self) -> dict[str, bytes]: ...


P = TypeVar("P", bound=Prepared)
H = TypeVar("H")


@dataclass(frozen=True, slots=True)
class Idempotency:
    """The client's Idempotency-Key, scoped to its caller and route."""

    route: str
    key: str
    body: bytes
    """The request as decoded: the same key with another body is refused."""


@dataclass(frozen=True, slots=True)
class TurnOrder(Generic[P, H]):
    caller: Caller
    claimed: ClaimedTurn
    """The turn's ids, as a retry with the same key will find them."""
    prepare: Callable[[AsyncExitStack], Awaitable[P]]
    """Builds the request; registers its own undo on the stack it is given."""
    deliver: Callable[[ChatRequest], Awaitable[H]]
    """Hands the admitted request over; what it returns is what the route renders."""
    idempotency: Idempotency | None = None


@dataclass(frozen=True, slots=True)
class Started(Generic[P, H]):
    prepared: P
    handed: H
    request: ChatRequest
    """As admitted (a budget may have set its max_tokens)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Rate-limit headers for the response."""


@dataclass(frozen=True, slots=True)
class Replayed:
    """An earlier request with the same Idempotency-Key started this turn."""

    turn: ClaimedTurn


async def launch_turn(state: GatewayState, order: TurnOrder[P, H]) -> Started[P, H] | Replayed:
    caller = order.caller
    async with AsyncExitStack() as undo:
        if order.idempotency is not None:
            scope = order.idempotency
            # A key is the caller's own: the same key from another tenant starts its own turn.
            route = f"{caller.tenant_id}.{caller.user_id}.{scope.route}"
            claim = await state.idempotency.claim(route, scope.key, scope.body, order.claimed)
            if claim.existing is not None:
                return Replayed(claim.existing)
            undo.push_async_callback(state.idempotency.release, claim)
        state.queue.check()
        prepared = await order.prepare(undo)
        entry = chat_model(state.catalog, prepared.request.model)
        admitted = await state.admission.admit(caller, prepared.request, entry)
        undo.push_async_callback(state.admission.release, admitted)
        await store_images(state.images, prepared.images)
        handed = await order.deliver(admitted.request)
        undo.pop_all()  # launched: nothing to take back
        return Started(prepared, handed, admitted.request, admitted.headers)
    raise AssertionError("unreachable: the stack re-raises or the block returns")


async def launch_live(
    state: GatewayState,
    caller: Caller,
    prepared: Prepared,
    route: str,
    idempotency_key: str | None,
    body: BaseModel,
) -> tuple[TurnFeed, dict[str, str]]:
    """A stateless turn whose events the caller reads (a completion, a message): its feed,
    or the first request's when the key was seen before, and the response headers.

    `body` is the request as decoded; serialised only to compare a retry's with it."""
    settings = state.settings
    # A client that sends a key means to retry: give it time to come back.
    grace_s = settings.resume_grace_s if idempotency_key else 0.0

    async def ready(_: AsyncExitStack) -> Prepared:
        return prepared

    async def follow(request: ChatRequest) -> TurnEvents:
        return await start_turn(state.bus, state.relay, request, settings.heartbeat_s, grace_s)

    scope = (
        None
        if idempotency_key is None
        else Idempotency(route, idempotency_key, body.model_dump_json().encode())
    )
    claimed = ClaimedTurn.of(TurnRef.of(prepared.request))
    launched = await launch_turn(state, TurnOrder(caller, claimed, ready, follow, scope))
    if isinstance(launched, Replayed):  # the first request's turn: this one runs nothing
        replay = ReplayedTurn(state.bus, launched.turn.ref(), settings.heartbeat_s, grace_s)
        return replay, {}
    return launched.handed, launched.headers
