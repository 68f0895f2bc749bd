"""Title and usage events onto TOKENBUS_TURNS, each under its event id as Nats-Msg-Id."""

from __future__ import annotations

import orjson
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import ConversationTitled, TurnUsage
from contracts.subjects import TURNS_STREAM, turn_event_subject
from services.runtime.telemetry import with_trace_context

__all__ = ["NatsTitlePublisher"]


class NatsTitlePublisher:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def publish_title(self, gateway_id: str, event: ConversationTitled) -> None:
        subject = turn_event_subject(gateway_id, event.conversation_id, event.turn_id, "title")
        # The server's duplicate window is two minutes; a redelivery after a crash can
        # come later than that, so look at the subject itself before publishing again.
        if await self._last_event_id(subject) == event.event_id:
            return
        await self._js.publish(
            subject,
            event.model_dump_json().encode(),
            stream=TURNS_STREAM,
            headers=with_trace_context({"Nats-Msg-Id": event.event_id}),
        )

    async def publish_usage(self, gateway_id: str, event: TurnUsage) -> None:
        subject = turn_event_subject(gateway_id, event.conversation_id, event.turn_id, "usage")
        await self._js.publish(
            subject,
            event.model_dump_json().encode(),
            stream=TURNS_STREAM,
            headers=with_trace_context({"Nats-Msg-Id": event.event_id}),
        )

    async def _last_event_id(self, subject: str) -> str | None:
        try:
            last = await self._js.get_last_msg(TURNS_STREAM, subject)
        except NotFoundError:
            return None
        try:
            data = orjson.loads(last.data or b"{}")
        except orjson.JSONDecodeError:
            return None
        found = data.get("event_id") if isinstance(data, dict) else None
        return found if isinstance(found, str) else None
