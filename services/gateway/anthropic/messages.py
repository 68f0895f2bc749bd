"""A turn's events as a Messages API answer: streamed as Anthropic's events, or collected."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from contracts import TurnCompleted, TurnDelta, TurnUsage
from services.gateway.anthropic.wire import PING, MessageStream, message_body, message_id
from services.gateway.turns.collect import finished_turn
from services.gateway.turns.items import (
    Heartbeat,
    Reset,
    TurnFeed,
    TurnTranscript,
    restarted_after_text,
)

__all__ = ["collect_message", "stream_message"]


async def stream_message(events: TurnFeed) -> AsyncIterator[bytes]:
    """SSE bytes for one turn; leaving early (client gone) closes the feed."""
    turn = events.turn
    writer = MessageStream(message_id(turn.turn_id), turn.model)
    transcript = TurnTranscript()
    try:
        # The stream opens at once, before the model's first token.
        yield writer.start()
        async for item in events:
            transcript.add(item)
            if isinstance(item, TurnDelta):
                frames = writer.text(item.text) if item.text else b""
                for piece in item.tool_calls:
                    frames += writer.call(piece)
                if frames:  # a later call's piece waits for the end
                    yield frames
            elif isinstance(item, Heartbeat):
                yield PING
            elif isinstance(item, Reset):
                if writer.started_content:
                    # Sent content cannot be taken back: end as failed, never garbled.
                    yield writer.error(restarted_after_text(turn))
                    return
            elif isinstance(item, TurnUsage):
                continue  # kept by the transcript, sent with message_delta
            elif isinstance(item, TurnCompleted):
                yield writer.finish(item.finish_reason, transcript.usage, transcript.tool_calls)
            else:
                yield writer.error(item)
    finally:
        events.close()


async def collect_message(events: TurnFeed) -> dict[str, Any]:
    done, transcript = await finished_turn(events)
    return message_body(
        events.turn.turn_id,
        done.model,
        transcript.text,
        transcript.tool_calls,
        done.finish_reason,
        transcript.usage,
    )
