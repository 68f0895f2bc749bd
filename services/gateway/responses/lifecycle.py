"""A stored response after its request: run in the background, streamed again, cancelled, deleted.

A background response is a stored turn that no client is attached to, as a
job is: its request goes on the bus for a route no gateway relays, and the
durable recorder keeps its answer in the conversation. Its events stay in the
turns stream for the replay window, so any replica can stream it again from
any event, and closing such a stream never stops the turn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final

from contracts import ChatRequest
from contracts.subjects import TURNS_STREAM, turn_filter
from services.gateway.caller import Caller
from services.gateway.conversations.models import Conversation
from services.gateway.conversations.recorder import AnswerKeeper
from services.gateway.conversations.service import delete_conversation
from services.gateway.http.errors import ApiError
from services.gateway.responses.ids import response_id
from services.gateway.responses.relay import ResponseHead, stream_response
from services.gateway.responses.stored import read_response, stored_turn
from services.gateway.responses.wire import EventWriter
from services.gateway.state import GatewayState
from services.gateway.turns.collect import finished_turn
from services.gateway.turns.control import request_cancel
from services.gateway.turns.items import TurnRef
from services.gateway.turns.live import publish_request
from services.gateway.turns.replay import ReplayedTurn, turn_events_kept
from services.runtime.semantic_tombstones import forget_semantic_entries

__all__ = [
    "BACKGROUND_ROUTE",
    "cancel_response",
    "delete_response",
    "detached",
    "queue_in_background",
    "stream_again",
]

BACKGROUND_ROUTE: Final = "background"
"""The gateway id background turns are published for: no gateway relays it live."""

# How long cancel and delete wait for the generator to end the turn. A queued turn
# that no generator has taken yet ends when one does, so the wait has to stop.
_STOP_WAIT_S = 5.0


async def queue_in_background(state: GatewayState, request: ChatRequest) -> ReplayedTurn:
    """Publish the turn for nobody's relay; its feed is read back from the stream."""
    request = request.model_copy(update={"gateway_id": BACKGROUND_ROUTE})
    await publish_request(state.bus, request)
    return detached(state, TurnRef.of(request))


def detached(state: GatewayState, turn: TurnRef) -> ReplayedTurn:
    """The turn's events from the stream; a reader that leaves does not stop the turn."""
    return ReplayedTurn(state.bus, turn, state.settings.heartbeat_s, cancels=False)


def _ref(conversation: Conversation, turn_id: str) -> TurnRef:
    return TurnRef(conversation.id, turn_id, conversation.model, correlation_id=turn_id)


def _head(conversation: Conversation, turn_id: str) -> ResponseHead:
    rid = response_id(conversation.id, turn_id, stored=True)
    return ResponseHead(rid, turn_id, conversation.turn_settings[turn_id])


async def stream_again(
    state: GatewayState, caller: Caller, value: str, starting_after: int
) -> AsyncIterator[bytes]:
    """The response's stream from after event `starting_after`, replayed then followed live.

    410 once the replay window has let its events go; 400 for a `starting_after`
    past the end of a response that has ended (a running one's end is not known yet).
    """
    conversation, turn_id = await stored_turn(state.conversations, caller, value)
    ended = conversation.has_answer_for(turn_id)
    if ended and not await turn_events_kept(state.bus, conversation.id, turn_id):
        raise ApiError(
            410,
            "This response's stream is past the replay window; retrieve it without stream.",
            "stream_expired",
            "stream",
        )
    writer = EventWriter(starting_after)
    frames = stream_response(
        _head(conversation, turn_id),
        detached(state, _ref(conversation, turn_id)),
        AnswerKeeper(state.bus, state.conversations),
        writer,
    )
    if not ended:
        return frames
    whole = [frame async for frame in frames]
    if starting_after > writer.last:
        raise ApiError(
            400,
            f"starting_after: this response's stream ends at event {writer.last}.",
            "invalid_value",
            "starting_after",
        )
    return _from_list(whole)


async def _from_list(frames: list[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame


async def cancel_response(state: GatewayState, caller: Caller, value: str) -> dict[str, Any]:
    """Stop the response if it still runs; the response as it then stands.

    Cancelling one that has ended changes nothing and answers it again, as
    OpenAI does for a second cancel.
    """
    conversation, turn_id = await stored_turn(state.conversations, caller, value)
    if not conversation.has_answer_for(turn_id):
        await _stop(state, conversation, turn_id)
    return await read_response(state.conversations, caller, value)


async def _stop(state: GatewayState, conversation: Conversation, turn_id: str) -> None:
    """Cancel the turn and wait (a bounded while) for its end to be recorded."""
    request_cancel(state.bus, conversation.id, turn_id)
    keeper = AnswerKeeper(state.bus, state.conversations)
    # A cancelled turn ends as a completion; a failure raised here is an end too.
    with contextlib.suppress(ApiError, TimeoutError):
        async with asyncio.timeout(_STOP_WAIT_S):
            await finished_turn(detached(state, _ref(conversation, turn_id)), keeper.keep)


async def delete_response(state: GatewayState, caller: Caller, value: str) -> dict[str, Any]:
    """Take the response's input, answer and events away (stopping it first if it runs).

    A response is a turn of a conversation: the conversation goes with its last
    own turn. Later responses that continued from it no longer see its exchange.
    """
    conversation, turn_id = await stored_turn(state.conversations, caller, value)
    if not conversation.has_answer_for(turn_id):
        await _stop(state, conversation, turn_id)
    if not _other_turns(conversation, turn_id):
        await delete_conversation(state.conversations, state.bus, caller, conversation.id)
    else:
        await state.bus.js.purge_stream(TURNS_STREAM, subject=turn_filter(conversation.id, turn_id))
        # Only a chain's first response can have been cached (one message, no history).
        await forget_semantic_entries(state.bus.js, caller.tenant_id, conversation.id)

        def without_turn(current: Conversation) -> Conversation:
            return current.model_copy(
                update={
                    "messages": tuple(m for m in current.messages if m.turn_id != turn_id),
                    "turn_settings": {
                        k: v for k, v in current.turn_settings.items() if k != turn_id
                    },
                }
            )

        await state.conversations.update(caller.tenant_id, conversation.id, without_turn)
    return {"id": value, "object": "response", "deleted": True}


def _other_turns(conversation: Conversation, turn_id: str) -> bool:
    """Whether anything of the conversation's own stays once the turn is gone.

    A branch starts with history copied from another conversation, written before
    this one was created: that history alone does not keep it.
    """
    created: datetime = conversation.created_at
    return any(m.turn_id != turn_id and m.created_at >= created for m in conversation.messages)
