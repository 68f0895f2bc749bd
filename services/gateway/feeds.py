"""Starting a turn, or attaching to the one an earlier request with the same key started."""

from __future__ import annotations

from contracts import ChatRequest
from services.gateway.errors import ApiError
from services.gateway.idempotency import Claim, ClaimedTurn
from services.gateway.replay import ReplayedTurn
from services.gateway.service import start_turn
from services.gateway.state import GatewayState
from services.gateway.turns import TurnFeed, TurnRef

__all__ = ["claim_turn", "open_feed"]


async def claim_turn(
    state: GatewayState, route: str, key: str | None, canonical_body: bytes, turn: ClaimedTurn
) -> Claim | None:
    """None without a key; otherwise the claim, which names an earlier turn if there was one."""
    if key is None:
        return None
    return await state.idempotency.claim(route, key, canonical_body, turn)


async def open_feed(
    state: GatewayState,
    request: ChatRequest,
    route: str,
    idempotency_key: str | None,
    canonical_body: bytes,
    cancel_grace_s: float = 0.0,
) -> TurnFeed:
    settings = state.settings
    turn = ClaimedTurn.of(TurnRef.of(request))
    # A key is the caller's own: the same key from another tenant starts its own turn.
    scoped_route = f"{request.tenant_id}.{request.user_id}.{route}"
    claim = await claim_turn(state, scoped_route, idempotency_key, canonical_body, turn)
    if claim is not None and claim.existing is not None:
        return ReplayedTurn(state.bus, claim.existing.ref(), settings.heartbeat_s, cancel_grace_s)
    try:
        state.queue.check()
        return await start_turn(
            state.bus, state.relay, request, settings.heartbeat_s, cancel_grace_s
        )
    except ApiError:
        if claim is not None:
            await state.idempotency.release(claim)
        raise
