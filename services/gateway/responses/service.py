"""What `POST /v1/responses` does: read, place the turn, build its request, launch it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from contracts import ChatRequest, new_id, utc_now
from services.gateway.admission.prompt_size import check_context
from services.gateway.caller import Caller
from services.gateway.catalog import chat_model
from services.gateway.http.cache_control import unless_cached
from services.gateway.responses.ids import response_id
from services.gateway.responses.lifecycle import detached, queue_in_background
from services.gateway.responses.relay import ResponseHead
from services.gateway.responses.schema import ResponseRequest
from services.gateway.responses.stored import abandon, find_previous, place_turn, slot_for
from services.gateway.responses.translate import (
    ResponseTurn,
    check_answered,
    read_request,
    with_instructions,
)
from services.gateway.state import GatewayState
from services.gateway.turns.idempotency import ClaimedTurn
from services.gateway.turns.items import TurnFeed
from services.gateway.turns.launch import Idempotency, Replayed, TurnOrder, launch_turn
from services.gateway.turns.live import start_turn
from services.gateway.turns.replay import ReplayedTurn
from services.gateway.turns.request import PreparedTurn, TurnSpec, chat_request, turn_deadline

__all__ = ["LaunchedResponse", "ResponsePlan", "launch_response", "plan_response"]


@dataclass(frozen=True, slots=True)
class ResponsePlan:
    claimed: ClaimedTurn
    prepare: Callable[[AsyncExitStack], Awaitable[PreparedTurn]]
    """launch_turn's step 3: records a stored response's input, then builds the request."""
    turn: ResponseTurn
    stored: bool

    def head(self, claimed: ClaimedTurn) -> ResponseHead:
        """The response of `claimed`: this plan's turn, or the first request's on a retry."""
        rid = response_id(claimed.conversation_id, claimed.turn_id, self.stored)
        return ResponseHead(rid, claimed.turn_id, self.turn.settings)


async def plan_response(
    state: GatewayState,
    caller: Caller,
    body: ResponseRequest,
    correlation_id: str,
    cache_control: str | None = None,
) -> ResponsePlan:
    """Everything that can be refused is refused here, before anything is claimed or stored."""
    entry = chat_model(state.catalog, body.model)
    turn = read_request(body, entry)
    previous = (
        None
        if body.previous_response_id is None
        else await find_previous(state.conversations, caller, body.previous_response_id)
    )
    check_answered(turn.input, previous.pending_calls if previous is not None else ())
    # As the model will see it when not stored; a stored turn is read back from its record.
    unstored = previous.context(turn.input) if previous is not None else turn.input
    check_context(
        entry,
        with_instructions(turn.instructions, unstored),
        turn.tools,
        turn.params.max_tokens,
        "input",
    )
    turn_id = new_id()
    # A response that is not stored is a conversation of one turn, like a completion.
    slot = slot_for(previous) if body.store else None
    conversation_id = turn_id if slot is None else slot.conversation_id
    settings = state.settings

    async def prepare(undo: AsyncExitStack) -> PreparedTurn:
        now = utc_now()
        messages = unstored
        if slot is not None:
            conversation = await place_turn(
                state.conversations,
                caller,
                slot,
                entry.name,
                turn.input,
                turn_id,
                turn.settings,
                turn_deadline(entry, settings, now),
                now,
            )
            undo.push_async_callback(abandon, state.conversations, caller, slot, turn_id)
            messages = conversation.context()
        spec = TurnSpec(
            conversation_id=conversation_id,
            turn_id=turn_id,
            correlation_id=correlation_id,
            messages=with_instructions(turn.instructions, messages),
            tools=turn.tools,
            tool_choice=turn.tool_choice,
            parallel_tool_calls=turn.parallel_tool_calls,
            params=turn.params,
            # Nobody reads a non-streamed answer as it comes: the generator may ask
            # again, unseen, for a structured answer that fails its check.
            buffered=not body.stream,
        )
        return unless_cached(
            PreparedTurn(chat_request(spec, entry, caller, settings, now)), cache_control
        )

    claimed = ClaimedTurn(
        conversation_id=conversation_id,
        turn_id=turn_id,
        model=entry.name,
        correlation_id=correlation_id,
    )
    return ResponsePlan(claimed, prepare, turn, stored=body.store)


@dataclass(frozen=True, slots=True)
class LaunchedResponse:
    head: ResponseHead
    events: TurnFeed
    headers: dict[str, str]
    replayed: bool
    """An earlier request with the same Idempotency-Key started this response."""


async def launch_response(
    state: GatewayState,
    caller: Caller,
    body: ResponseRequest,
    plan: ResponsePlan,
    idempotency_key: str | None,
) -> LaunchedResponse:
    """The planned turn on the bus, followed live, or in the background (read back)."""
    settings = state.settings
    # A client that sends a key means to retry: give it time to come back.
    grace_s = settings.resume_grace_s if idempotency_key else 0.0

    async def follow(request: ChatRequest) -> TurnFeed:
        if body.background:
            return await queue_in_background(state, request)
        return await start_turn(state.bus, state.relay, request, settings.heartbeat_s, grace_s)

    scope = (
        None
        if idempotency_key is None
        else Idempotency("responses", idempotency_key, body.model_dump_json().encode())
    )
    launched = await launch_turn(
        state, TurnOrder(caller, plan.claimed, plan.prepare, follow, scope)
    )
    if isinstance(launched, Replayed):  # the first request's turn: this one runs nothing
        turn = launched.turn.ref()
        events: TurnFeed = (
            detached(state, turn)
            if body.background
            else ReplayedTurn(state.bus, turn, settings.heartbeat_s, grace_s)
        )
        return LaunchedResponse(plan.head(launched.turn), events, {}, replayed=True)
    return LaunchedResponse(plan.head(plan.claimed), launched.handed, launched.headers, False)
