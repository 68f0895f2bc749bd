"""A turn's items rendered as a response: streamed as Responses events, or collected whole."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from contracts import ToolCall, ToolCallDelta, TurnCompleted, TurnDelta, TurnFailed, TurnUsage
from services.gateway.http.sse import HEARTBEAT
from services.gateway.responses.wire import (
    EventWriter,
    Usage,
    call_item_id,
    failure_error,
    function_call_item,
    message_id,
    message_item,
    output_items,
    response_body,
    wire_status,
)
from services.gateway.turns.collect import finished_turn
from services.gateway.turns.items import Heartbeat, Reset, TurnFeed, TurnTranscript

__all__ = ["AnswerKeeping", "ResponseHead", "collect_response", "stream_response"]


class AnswerKeeping(Protocol):
    """Stores a stored response's answer before its client hears that it ended."""

    async def keep(self, final: TurnCompleted | TurnFailed, transcript: TurnTranscript) -> None: ...


@dataclass(frozen=True, slots=True)
class ResponseHead:
    response_id: str
    turn_id: str
    settings: dict[str, Any]

    def body(self, status: str, output: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
        return response_body(self.response_id, self.settings, status, output, **more)


def usage_of(usage: TurnUsage | None) -> Usage | None:
    return None if usage is None else (usage.input_tokens, usage.output_tokens,
                                       usage.cached_input_tokens)  # fmt: skip


def final_body(
    head: ResponseHead,
    final: TurnCompleted,
    output: list[dict[str, Any]],
    usage: TurnUsage | None,
) -> dict[str, Any]:
    status, incomplete = wire_status(final.finish_reason)
    return head.body(
        status,
        output,
        usage=usage_of(usage),
        model=final.model,
        incomplete=incomplete,
        completed_at=int(time.time()) if status == "completed" else None,
    )


def failed_body(
    head: ResponseHead, failure: TurnFailed, output: list[dict[str, Any]], usage: TurnUsage | None
) -> dict[str, Any]:
    error = failure_error(failure.code, failure.message)
    return head.body("failed", output, usage=usage_of(usage), error=error)


async def collect_response(
    head: ResponseHead, events: TurnFeed, keeper: AnswerKeeping | None
) -> dict[str, Any]:
    done, transcript = await finished_turn(events, keeper.keep if keeper is not None else None)
    status, _ = wire_status(done.finish_reason)
    item_status = "completed" if status == "completed" else "incomplete"
    calls = transcript.tool_calls if status != "cancelled" else ()
    output = output_items(head.turn_id, transcript.text, calls, item_status)
    return final_body(head, done, output, transcript.usage)


class _StreamedOutput:
    """The output items as they stream, with the events that open, fill and close each."""

    def __init__(self, writer: EventWriter, turn_id: str) -> None:
        self._write = writer.event
        self._turn_id = turn_id
        self._items: list[dict[str, Any]] = []
        self._message: int | None = None
        self._text: list[str] = []
        self._calls: dict[int, tuple[int, list[str]]] = {}
        """Per call index: its output index and its arguments so far."""

    @property
    def started(self) -> bool:
        return bool(self._items)

    def text(self, delta: str) -> bytes:
        opened = b""
        if self._message is None:
            self._message = len(self._items)
            item = message_item(message_id(self._turn_id), None, "in_progress")
            self._items.append(item)
            opened = self._write(
                "response.output_item.added", output_index=self._message, item=item
            ) + self._write(
                "response.content_part.added",
                item_id=item["id"],
                output_index=self._message,
                content_index=0,
                part=_text_part(""),
            )
        self._text.append(delta)
        return opened + self._write(
            "response.output_text.delta",
            item_id=message_id(self._turn_id),
            output_index=self._message,
            content_index=0,
            delta=delta,
            logprobs=[],
        )

    def call(self, piece: ToolCallDelta) -> bytes:
        opened = b""
        if piece.index not in self._calls:
            index = len(self._items)
            self._calls[piece.index] = (index, [])
            call = ToolCall(id=piece.id or "call_missing", name=piece.name or "unknown",
                            arguments="")  # fmt: skip
            item = function_call_item(call_item_id(self._turn_id, piece.index), call, "in_progress")
            self._items.append(item)
            opened = self._write("response.output_item.added", output_index=index, item=item)
        index, arguments = self._calls[piece.index]
        if not piece.arguments:
            return opened
        arguments.append(piece.arguments)
        return opened + self._write(
            "response.function_call_arguments.delta",
            item_id=self._items[index]["id"],
            output_index=index,
            delta=piece.arguments,
        )

    def close(self, status: str) -> bytes:
        """The done events of every item, in order; the items are then whole."""
        frames: list[bytes] = []
        for index, item in enumerate(self._items):
            item["status"] = status
            if item["type"] == "message":
                text = "".join(self._text)
                part = _text_part(text)
                item["content"] = [part]
                common = {"item_id": item["id"], "output_index": index, "content_index": 0}
                frames.append(
                    self._write("response.output_text.done", **common, text=text, logprobs=[])
                )
                frames.append(self._write("response.content_part.done", **common, part=part))
            else:
                item["arguments"] = self._arguments_at(index)
                frames.append(
                    self._write(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=index,
                        arguments=item["arguments"],
                    )
                )
            frames.append(self._write("response.output_item.done", output_index=index, item=item))
        return b"".join(frames)

    def _arguments_at(self, index: int) -> str:
        for at, arguments in self._calls.values():
            if at == index:
                return "".join(arguments)
        return ""

    @property
    def output(self) -> list[dict[str, Any]]:
        return self._items


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


async def stream_response(
    head: ResponseHead,
    events: TurnFeed,
    keeper: AnswerKeeping | None,
    writer: EventWriter | None = None,
) -> AsyncIterator[bytes]:
    """SSE bytes for one response; leaving early (client gone) closes the feed.

    With a `writer` that starts after event N, what a client already has is not
    written again (and a heartbeat keeps the connection while it is passed over).
    """
    async for frame in _frames(head, events, keeper, writer or EventWriter()):
        if frame:
            yield frame


async def _frames(
    head: ResponseHead, events: TurnFeed, keeper: AnswerKeeping | None, writer: EventWriter
) -> AsyncIterator[bytes]:
    output = _StreamedOutput(writer, head.turn_id)
    transcript = TurnTranscript()
    try:
        # The SDK's stream helper wants these two before anything else, at once.
        yield writer.event("response.created", response=head.body("in_progress", []))
        yield writer.event("response.in_progress", response=head.body("in_progress", []))
        async for item in events:
            transcript.add(item)
            if isinstance(item, TurnDelta):
                if item.text:
                    yield output.text(item.text)
                for piece in item.tool_calls:
                    yield output.call(piece)
            elif isinstance(item, Heartbeat):
                yield HEARTBEAT
            elif isinstance(item, Reset):
                if output.started:
                    # Events cannot be taken back: end as failed, never as a garbled answer.
                    yield writer.event(
                        "response.failed",
                        response=head.body("failed", output.output, error=_interrupted()),
                    )
                    return
            elif isinstance(item, TurnCompleted):
                if keeper is not None:
                    await keeper.keep(item, transcript)
                status, _ = wire_status(item.finish_reason)
                closing = output.close("completed" if status == "completed" else "incomplete")
                body = final_body(head, item, output.output, transcript.usage)
                kind = "response.completed" if status == "completed" else "response.incomplete"
                yield closing + writer.event(kind, response=body)
            elif isinstance(item, TurnFailed):
                if keeper is not None:
                    await keeper.keep(item, transcript)
                body = failed_body(head, item, output.output, transcript.usage)
                yield writer.event("response.failed", response=body)
    finally:
        events.close()


def _interrupted() -> dict[str, Any]:
    return failure_error("upstream_error", "The answer was interrupted; please retry")
