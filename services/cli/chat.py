"""`tokenbus chat`: a conversation in the terminal, the answer streamed as Markdown."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.live import Live
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

__all__ = [
    "ApiFailure",
    "ChatClient",
    "ChatOptions",
    "SseEvent",
    "TurnProgress",
    "add_chat_command",
    "follow_turn",
    "parse_sse",
    "resolve_api_key",
    "run_chat",
]

DEFAULT_URL = "http://127.0.0.1:8000"
DEV_KEY_FILE = Path(".tokenbus") / "dev-api-key"
_RECONNECTS = 6


class ChatSettings(BaseSettings):
    """What `tokenbus chat` takes from the environment when no flag says otherwise."""

    model_config = SettingsConfigDict(env_prefix="TOKENBUS_")

    api_key: str | None = None
    url: str = DEFAULT_URL


# ---------------------------------------------------------------- SSE


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: dict[str, Any]
    id: str | None = None


def _decode(lines: list[str]) -> dict[str, Any]:
    text = "\n".join(lines)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"raw": value}


def parse_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """The events of an SSE stream, given its lines; comments (keep-alives) are skipped.

    As the SSE spec says, a frame cut off by the end of the stream is dropped.
    """
    event, event_id, data = "message", None, list[str]()
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield SseEvent(event, _decode(data), event_id)
            event, event_id, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


# ---------------------------------------------------------------- HTTP


class ApiFailure(Exception):
    """The gateway said no (an OpenAI-style error body), or could not be reached."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return f"{self.message} ({self.code})" if self.code else self.message


def _failure(response: httpx.Response) -> ApiFailure:
    message, code = f"The gateway answered {response.status_code}.", None
    try:
        error = response.json().get("error") or {}
        message, code = error.get("message") or message, error.get("code")
    except (ValueError, AttributeError):
        pass
    return ApiFailure(response.status_code, message, code)


Events = AbstractContextManager[Iterator[SseEvent]]


class ChatClient:
    """The conversations API over one httpx client (its base URL and key set by the caller)."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise ApiFailure(0, f"Cannot reach the gateway: {exc}", "network_error") from exc
        if not response.is_success:
            raise _failure(response)
        return response.json()

    def models(self) -> list[str]:
        return [m["id"] for m in self._json("GET", "/v1/models")["data"]]

    def conversations(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._json("GET", "/v1/conversations")["data"]
        return data

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        detail: dict[str, Any] = self._json("GET", f"/v1/conversations/{conversation_id}")
        return detail

    def create(self, model: str | None) -> dict[str, Any]:
        created: dict[str, Any] = self._json("POST", "/v1/conversations", {"model": model})
        return created

    def cancel(self, conversation_id: str) -> bool:
        """Ask the running turn to stop; False when none was running any more."""
        try:
            self._json("POST", f"/v1/conversations/{conversation_id}/cancel")
        except ApiFailure as exc:
            if exc.code == "no_turn_in_progress":
                return False
            raise
        return True

    def send(self, conversation_id: str, body: dict[str, Any]) -> Events:
        return self._stream("POST", f"/v1/conversations/{conversation_id}/messages", body)

    def attach(self, conversation_id: str, last_event_id: str | None) -> Events:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        return self._stream("GET", f"/v1/conversations/{conversation_id}/stream", None, headers)

    @contextmanager
    def _stream(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str] | None = None,
    ) -> Iterator[Iterator[SseEvent]]:
        with self._http.stream(
            method, path, json=body, headers={"Accept": "text/event-stream", **(headers or {})}
        ) as response:
            if not response.is_success:
                response.read()
                raise _failure(response)
            yield parse_sse(response.iter_lines())


# ---------------------------------------------------------------- following a turn


class TurnView(Protocol):
    """Where a turn's events are shown."""

    def delta(self, text: str) -> None: ...
    def restart(self) -> None: ...
    def usage(self, data: dict[str, Any]) -> None: ...
    def done(self, finish_reason: str) -> None: ...
    def failed(self, code: str, message: str) -> None: ...
    def title(self, title: str) -> None: ...
    def notice(self, text: str) -> None: ...


@dataclass
class TurnProgress:
    conversation_id: str
    turn_id: str | None = None
    last_event_id: str | None = None
    ended: bool = False
    cancel_requested: bool = False


def _apply(progress: TurnProgress, event: SseEvent, view: TurnView) -> bool:
    """Show one event; False when the stream belongs to another turn than ours."""
    data = event.data
    if event.event != "turn" and event.id:
        # Noted first: a Ctrl-C while the view draws must not make the resume repeat it.
        progress.last_event_id = event.id
    if event.event == "turn":
        turn_id = str(data.get("turn_id", ""))
        if progress.turn_id is not None and turn_id != progress.turn_id:
            return False
        progress.turn_id = turn_id
    elif event.event == "delta":
        view.delta(str(data.get("text", "")))
    elif event.event == "usage":
        view.usage(data)
    elif event.event == "done":
        progress.ended = True
        view.done(str(data.get("finish_reason", "stop")))
    elif event.event == "error":
        progress.ended = True
        view.failed(str(data.get("code", "error")), str(data.get("message", "")))
    elif event.event == "reset":
        view.restart()  # another generator restarted the turn: its text starts over
    elif event.event == "title" and data.get("title"):
        view.title(str(data["title"]))
    return True


def follow_turn(
    client: ChatClient,
    progress: TurnProgress,
    first: Callable[[], Events],
    view: TurnView,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Read a turn to its end: reconnect after a dropped connection, cancel on Ctrl-C.

    The first Ctrl-C asks the gateway to stop the turn and waits for its last
    events (the partial answer's usage); a second one stops waiting.
    Raises ApiFailure only when the first request is refused (no turn started).
    """
    opened, failures = first, 0
    while True:
        try:
            try:
                with opened() as events:
                    for event in events:
                        if not _apply(progress, event, view):
                            return
                        failures = 0
            except httpx.TransportError:
                if progress.turn_id is None:
                    raise ApiFailure(0, "Lost the gateway before the turn started.") from None
            if progress.ended:
                return
            if progress.turn_id is None:
                raise ApiFailure(0, "The gateway closed the stream before the turn started.")
            failures += 1
            if failures > _RECONNECTS:
                view.failed("connection_lost", "Lost the connection to the gateway.")
                return
            view.notice("connection lost, reconnecting…")
            sleep(min(0.25 * 2 ** (failures - 1), 4.0))
            if progress.last_event_id is None:
                view.restart()  # attaching without an id replays the turn from its start
            opened = _reattach(client, progress)
        except KeyboardInterrupt:
            if progress.ended or progress.cancel_requested:
                return
            progress.cancel_requested = True
            view.notice("cancelling…")
            try:
                client.cancel(progress.conversation_id)
            except ApiFailure as exc:
                view.notice(f"could not cancel: {exc}")
                return
            if progress.turn_id is None:
                return  # never saw the turn start: nothing to wait for
            if progress.last_event_id is None:
                view.restart()
            opened = _reattach(client, progress)
        except ApiFailure as exc:
            if progress.turn_id is None and not progress.cancel_requested:
                raise
            view.failed(exc.code or "error", exc.message)
            return


def _reattach(client: ChatClient, progress: TurnProgress) -> Callable[[], Events]:
    return lambda: client.attach(progress.conversation_id, progress.last_event_id)


# ---------------------------------------------------------------- terminal views


def _usage_line(model: str, finish: str, usage: dict[str, Any] | None) -> str:
    parts = [model, finish]
    if usage:
        approx = "≈" if usage.get("estimated") else ""
        parts.append(
            f"{approx}{usage.get('input_tokens', 0)} in / "
            f"{approx}{usage.get('output_tokens', 0)} out tokens"
        )
    return " · ".join(parts)


class _BaseView:
    def __init__(self, out: Console, err: Console, model: str) -> None:
        self.out, self.err, self.model = out, err, model
        self.text = ""
        self._usage: dict[str, Any] | None = None

    def usage(self, data: dict[str, Any]) -> None:
        self._usage = data

    def title(self, title: str) -> None:
        self.err.print(Text(f"title: {title}", style="dim"))

    def _summary(self, finish: str) -> None:
        label = {"cancelled": "cancelled", "length": "cut at max tokens"}.get(finish, finish)
        style = "yellow" if finish == "cancelled" else "dim"
        self.err.print(Text(f"[{_usage_line(self.model, label, self._usage)}]", style=style))


class MarkdownView(_BaseView):
    """An interactive terminal: the answer re-rendered as Markdown while it grows."""

    def __init__(self, out: Console, err: Console, model: str) -> None:
        super().__init__(out, err, model)
        self._live = Live(
            Markdown(""), console=out, refresh_per_second=12, vertical_overflow="visible"
        )

    def __enter__(self) -> MarkdownView:
        self._live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._live.stop()

    def delta(self, text: str) -> None:
        self.text += text
        self._live.update(Markdown(self.text))

    def restart(self) -> None:
        self.text = ""
        self._live.update(Markdown(""))

    def done(self, finish_reason: str) -> None:
        self._live.update(Markdown(self.text), refresh=True)
        self._live.stop()
        self._summary(finish_reason)

    def failed(self, code: str, message: str) -> None:
        self._live.stop()
        self.err.print(Text(f"error ({code}): {message}", style="bold red"))

    def notice(self, text: str) -> None:
        self._live.console.print(Text(text, style="dim italic"))


class PlainView(_BaseView):
    """Output to a pipe or a file: the answer's text as it comes, nothing redrawn."""

    def __enter__(self) -> PlainView:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.text and not self.text.endswith("\n"):
            self._write("\n")

    def _write(self, text: str) -> None:
        self.out.file.write(text)
        self.out.file.flush()

    def delta(self, text: str) -> None:
        self.text += text
        self._write(text)

    def restart(self) -> None:
        if self.text:
            self._write("\n")
            self.err.print(Text("[the answer restarted]", style="dim"))
        self.text = ""

    def done(self, finish_reason: str) -> None:
        if self.text and not self.text.endswith("\n"):
            self._write("\n")
            self.text += "\n"
        self._summary(finish_reason)

    def failed(self, code: str, message: str) -> None:
        if self.text and not self.text.endswith("\n"):
            self._write("\n")
            self.text += "\n"
        self.err.print(Text(f"error ({code}): {message}", style="bold red"))

    def notice(self, text: str) -> None:
        self.err.print(Text(text, style="dim italic"))


# ---------------------------------------------------------------- the command


@dataclass(frozen=True)
class ChatOptions:
    url: str
    api_key: str | None
    model: str | None = None
    conversation: str | None = None
    list_only: bool = False
    max_tokens: int | None = None
    temperature: float | None = None


def resolve_api_key(flag: str | None, env: str | None, key_file: Path = DEV_KEY_FILE) -> str | None:
    """--api-key, else $TOKENBUS_API_KEY, else the dev key `tokenbus up` wrote."""
    if flag:
        return flag
    if env:
        return env
    if key_file.is_file():
        return key_file.read_text().strip() or None
    return None


def add_chat_command(commands: Any) -> None:
    """Register `tokenbus chat` on the CLI's subparsers."""
    chat: argparse.ArgumentParser = commands.add_parser(
        "chat",
        help="chat with a model in the terminal",
        description=(
            "Chat in the terminal: answers stream in as Markdown. Ctrl-C during an answer "
            "stops it; Ctrl-D or /exit at the prompt quits; /new starts a new conversation."
        ),
    )
    chat.add_argument("--url", help=f"gateway URL (default $TOKENBUS_URL or {DEFAULT_URL})")
    chat.add_argument("--api-key", help=f"API key (default $TOKENBUS_API_KEY, then {DEV_KEY_FILE})")
    chat.add_argument(
        "--model", help="model for a new conversation (default: the first chat model)"
    )
    chat.add_argument("--conversation", metavar="ID", help="continue this conversation")
    chat.add_argument(
        "--list", action="store_true", dest="list_only", help="list conversations and exit"
    )
    chat.add_argument("--max-tokens", type=int, help="longest answer, in tokens")
    chat.add_argument("--temperature", type=float)


def options_from_args(args: argparse.Namespace) -> ChatOptions:
    settings = ChatSettings()
    return ChatOptions(
        url=args.url or settings.url,
        api_key=resolve_api_key(args.api_key, settings.api_key),
        model=args.model,
        conversation=args.conversation,
        list_only=args.list_only,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
    )


def _print_list(out: Console, conversations: list[dict[str, Any]]) -> None:
    if not conversations:
        out.print("No conversations yet.")
        return
    rows = [
        (c["id"], c.get("title") or "(untitled)", c.get("model", ""), c.get("updated_at", ""))
        for c in conversations
    ]
    if not out.is_terminal:  # for scripts: one tab-separated line per conversation
        for row in rows:
            out.file.write("\t".join(row) + "\n")
        return
    table = Table(box=None, header_style="bold")
    table.add_column("id", no_wrap=True)
    table.add_column("title", overflow="fold")
    table.add_column("model", no_wrap=True)
    table.add_column("updated", no_wrap=True)
    for row in rows:  # Text, not markup: a title is the model's words
        table.add_row(*(Text(cell) for cell in (*row[:3], row[3][:19].replace("T", " "))))
    out.print(table)


def _print_history(out: Console, err: Console, detail: dict[str, Any]) -> None:
    err.print(Text(f"{detail.get('title') or 'untitled'} · {detail['model']}", style="bold"))
    for message in detail.get("messages", []):
        running = message.get("turn_id") == detail.get("active_turn_id")
        if message["role"] == "user":
            line = f"you > {message['content']}"
            if out.is_terminal:
                out.print(Text(line, style="bold cyan"))
            else:
                out.file.write(line + "\n")
        elif message["role"] == "assistant" and not running:
            if out.is_terminal:
                out.print(Markdown(message["content"]))
            else:
                out.file.write(message["content"].rstrip("\n") + "\n")
    out.file.flush()


class _Session:
    def __init__(self, client: ChatClient, options: ChatOptions, out: Console, err: Console):
        self.client, self.options, self.out, self.err = client, options, out, err
        self.conversation_id = options.conversation
        self.model = options.model or ""

    def view(self) -> MarkdownView | PlainView:
        cls = MarkdownView if self.out.is_terminal else PlainView
        return cls(self.out, self.err, self.model)

    def turn(self, first: Callable[[], Events], progress: TurnProgress) -> None:
        with self.view() as view:
            follow_turn(self.client, progress, first, view)

    def say(self, content: str) -> None:
        if self.conversation_id is None:
            created = self.client.create(self.options.model)
            self.conversation_id, self.model = created["id"], created["model"]
            self.err.print(Text(f"conversation {self.conversation_id} · {self.model}", style="dim"))
        body: dict[str, Any] = {"content": content}
        if self.options.max_tokens is not None:
            body["max_tokens"] = self.options.max_tokens
        if self.options.temperature is not None:
            body["temperature"] = self.options.temperature
        conversation_id = self.conversation_id
        self.turn(lambda: self.client.send(conversation_id, body), TurnProgress(conversation_id))

    def resume(self) -> None:
        assert self.conversation_id is not None
        detail = self.client.conversation(self.conversation_id)
        self.model = detail["model"]
        _print_history(self.out, self.err, detail)
        if detail.get("active_turn_id"):
            progress = TurnProgress(self.conversation_id, turn_id=detail["active_turn_id"])
            self.turn(_reattach(self.client, progress), progress)


def _read_message(out: Console, err: Console) -> str | None:
    """The next message, or None at the end of input (Ctrl-D, or a pipe's end)."""
    try:
        if out.is_terminal:
            return out.input("[bold cyan]you >[/] ")
        return input()
    except EOFError:
        return None
    except KeyboardInterrupt:
        # Not a way out: a Ctrl-C meant for an answer that just ended must not quit.
        err.print(Text("\n(Ctrl-D or /exit quits)", style="dim"))
        return ""


def run_chat(options: ChatOptions, out: Console | None = None, err: Console | None = None) -> int:
    out = out or Console()
    err = err or Console(stderr=True)
    headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
    timeout = httpx.Timeout(10.0, read=60.0)
    with httpx.Client(base_url=options.url, headers=headers, timeout=timeout) as http:
        client = ChatClient(http)
        try:
            if options.list_only:
                _print_list(out, client.conversations())
                return 0
            if options.model and options.model not in client.models():
                known = ", ".join(client.models())
                err.print(Text(f"No model {options.model!r} here. Models: {known}", style="red"))
                return 2
            session = _Session(client, options, out, err)
            if options.conversation:
                session.resume()
        except ApiFailure as exc:
            err.print(Text(f"error: {exc}", style="bold red"))
            if exc.status == 401:
                err.print("Pass --api-key or set TOKENBUS_API_KEY.")
            return 1
        while (line := _read_message(out, err)) is not None:
            content = line.strip()
            if not content:
                continue
            if content in {"/exit", "/quit"}:
                break
            if content == "/new":
                session.conversation_id = None
                err.print(Text("new conversation", style="dim"))
                continue
            try:
                session.say(content)
            except ApiFailure as exc:
                err.print(Text(f"error: {exc}", style="bold red"))
            except KeyboardInterrupt:  # before the turn began: nothing to cancel
                err.print(Text("interrupted", style="dim"))
    return 0
