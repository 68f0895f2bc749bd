"""`tokenbus chat` without a gateway: SSE parsing, key lookup, following a turn."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cli.chat import (
    ApiFailure,
    ChatClient,
    SseEvent,
    TurnProgress,
    follow_turn,
    parse_sse,
    resolve_api_key,
)

TURN = "turn0001"


def frame(event: str, data: dict[str, Any], seq: int | None = None) -> bytes:
    head = f"id: {TURN}:1:{seq}\n" if seq is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def turn_frames(text: list[str], finish: str = "length") -> list[bytes]:
    frames = [frame("turn", {"conversation_id": "conv1", "turn_id": TURN, "model": "m"})]
    frames += [frame("delta", {"text": t}, i) for i, t in enumerate(text, start=1)]
    frames.append(frame("usage", {"input_tokens": 3, "output_tokens": len(text)}, len(text) + 1))
    frames.append(frame("done", {"finish_reason": finish, "model": "m"}, len(text) + 2))
    return frames


class Frames(httpx.SyncByteStream):
    """A response body sent frame by frame, optionally cut off like a dropped connection."""

    def __init__(self, frames: list[bytes], then_drop: bool = False) -> None:
        self.frames, self.then_drop = frames, then_drop

    def __iter__(self) -> Iterator[bytes]:
        yield from self.frames
        if self.then_drop:
            raise httpx.ReadError("connection reset by peer")


def sse_response(frames: list[bytes], then_drop: bool = False) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=Frames(frames, then_drop)
    )


class Recorder:
    """A TurnView that writes down what it was shown."""

    def __init__(self, on_delta: Callable[[str], None] | None = None) -> None:
        self.text = ""
        self.calls: list[tuple[str, Any]] = []
        self.on_delta = on_delta

    def delta(self, text: str) -> None:
        self.text += text
        if self.on_delta:
            self.on_delta(text)

    def restart(self) -> None:
        self.text = ""
        self.calls.append(("restart", None))

    def usage(self, data: dict[str, Any]) -> None:
        self.calls.append(("usage", data))

    def done(self, finish_reason: str) -> None:
        self.calls.append(("done", finish_reason))

    def failed(self, code: str, message: str) -> None:
        self.calls.append(("failed", code))

    def title(self, title: str) -> None:
        self.calls.append(("title", title))

    def notice(self, text: str) -> None:
        self.calls.append(("notice", text))

    def last(self, name: str) -> Any:
        return next(value for call, value in reversed(self.calls) if call == name)


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> ChatClient:
    return ChatClient(
        httpx.Client(base_url="http://gateway", transport=httpx.MockTransport(handler))
    )


def test_parses_frames_ids_and_multiline_data_and_skips_keep_alives() -> None:
    lines = [
        ": keep-alive",
        "",
        "id: t:1:1",
        "event: delta",
        'data: {"text":',
        'data: "hi"}',
        "",
        "event: reset\r",
        'data: {"attempt": 2}',
        "",
    ]
    assert list(parse_sse(lines)) == [
        SseEvent("delta", {"text": "hi"}, "t:1:1"),
        SseEvent("reset", {"attempt": 2}, None),
    ]


def test_drops_a_frame_cut_off_by_the_end_of_the_stream() -> None:
    lines = ["event: delta", 'data: {"text": "a"}', "", "event: delta", 'data: {"text": "b"}']
    assert [e.data["text"] for e in parse_sse(lines)] == ["a"]


def test_keeps_data_that_is_not_json_as_raw_text() -> None:
    assert list(parse_sse(["data: plain words", ""])) == [
        SseEvent("message", {"raw": "plain words"})
    ]


def test_api_key_comes_from_the_flag_then_the_environment_then_the_dev_key_file(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "dev-api-key"
    assert resolve_api_key(None, None, key_file) is None
    key_file.write_text("tb_from_file\n")
    assert resolve_api_key(None, None, key_file) == "tb_from_file"
    assert resolve_api_key(None, "tb_from_env", key_file) == "tb_from_env"
    assert resolve_api_key("tb_from_flag", "tb_from_env", key_file) == "tb_from_flag"


def test_follows_a_turn_to_its_end() -> None:
    client = client_for(lambda request: sse_response(turn_frames(["Hel", "lo"])))
    view, progress = Recorder(), TurnProgress("conv1")
    follow_turn(client, progress, lambda: client.send("conv1", {"content": "hi"}), view)
    assert view.text == "Hello"
    assert view.last("usage")["output_tokens"] == 2
    assert view.last("done") == "length"
    assert progress.ended
    assert progress.last_event_id == f"{TURN}:1:4"


def test_a_dropped_connection_resumes_after_the_last_event_seen() -> None:
    frames = turn_frames(["a", "b", "c", "d"])
    seen_ids: list[str | None] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return sse_response(frames[:3], then_drop=True)  # turn, "a", "b"
        seen_ids.append(request.headers.get("last-event-id"))
        return sse_response([frames[0], *frames[3:]])

    client = client_for(gateway)
    view = Recorder()
    follow_turn(
        client,
        TurnProgress("conv1"),
        lambda: client.send("conv1", {"content": "hi"}),
        view,
        sleep=lambda _: None,
    )
    assert seen_ids == [f"{TURN}:1:2"]
    assert view.text == "abcd"  # nothing lost, nothing repeated
    assert view.last("done") == "length"


def test_a_refused_message_raises_the_gateways_error() -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        body = {"error": {"message": "busy", "type": "x", "code": "turn_in_progress"}}
        return httpx.Response(409, json=body)

    client = client_for(gateway)
    with pytest.raises(ApiFailure) as refused:
        follow_turn(
            client,
            TurnProgress("conv1"),
            lambda: client.send("conv1", {"content": "hi"}),
            Recorder(),
        )
    assert refused.value.status == 409
    assert refused.value.code == "turn_in_progress"


def test_ctrl_c_cancels_the_turn_and_shows_how_it_ended() -> None:
    frames = turn_frames(["a", "b", "c"])
    requests: list[str] = []
    resumed_after: list[str | None] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        requests.append(f"{request.method} {request.url.path}")
        resumed_after.append(request.headers.get("last-event-id"))
        if request.method == "POST" and request.url.path.endswith("/messages"):
            return sse_response(frames)
        if request.url.path.endswith("/cancel"):
            return httpx.Response(200, json={"object": "turn.cancel"})
        cancelled = frame("done", {"finish_reason": "cancelled", "model": "m"}, 3)
        return sse_response([frames[0], cancelled])

    def interrupt_once(text: str) -> None:
        if text == "a":
            raise KeyboardInterrupt

    client = client_for(gateway)
    view, progress = Recorder(on_delta=interrupt_once), TurnProgress("conv1")
    follow_turn(client, progress, lambda: client.send("conv1", {"content": "hi"}), view)
    assert requests == [
        "POST /v1/conversations/conv1/messages",
        "POST /v1/conversations/conv1/cancel",
        "GET /v1/conversations/conv1/stream",
    ]
    assert resumed_after[-1] == f"{TURN}:1:1"
    assert view.text == "a"
    assert view.last("done") == "cancelled"
    assert progress.cancel_requested
