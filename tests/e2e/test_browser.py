"""The chat page in a real browser (Debian's Chromium) against the real stack."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.e2e.test_tools import TOOLS
from tests.faults.upstream import FaultyUpstream
from tests.support import Stack

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("TOKENBUS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
README_SHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
LONG = "Write a very long story about a dragon who learns to cook."
ANSWER = "article.message.assistant"


class CuttableProxy:
    """A TCP relay to the gateway whose open connections can be cut, as a network blip does."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            cut, self._open = self._open, []
        for end in cut:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self._server.close()
        self.cut()


def api_key(stack: Stack) -> str:
    return str(getattr(stack, "api_key", "dev"))


def api(stack: Stack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.gateway_url,
        headers={"Authorization": f"Bearer {api_key(stack)}"},
        timeout=30,
    )


def stored_answer(stack: Stack, conversation_id: str) -> dict[str, Any]:
    """The conversation's last assistant message, once the turn is over and recorded."""
    deadline = time.monotonic() + 60
    with api(stack) as http:
        while True:
            body = http.get(f"/v1/conversations/{conversation_id}").json()
            answers = [m for m in body["messages"] if m["role"] == "assistant"]
            if answers and body["active_turn_id"] is None:
                return dict(answers[-1])
            assert time.monotonic() < deadline, "the answer was never recorded"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make install` installs it")
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"]
    )
    yield launched
    launched.close()


def _context(browser: Browser, stack: Stack, key: str | None, **options: Any) -> BrowserContext:
    context = browser.new_context(**{"base_url": stack.gateway_url, **options})
    if key is not None:
        # As if the key had been entered once in the dialog on an earlier visit.
        context.add_init_script(f"localStorage.setItem('tokenbus.apiKey', {json.dumps(key)});")
    context.set_default_timeout(30_000)
    return context


@pytest.fixture
def page(browser: Browser, stack: Stack, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = _context(browser, stack, api_key(stack), viewport={"width": 1100, "height": 760})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"the page threw: {errors}"


def ask(page: Page, text: str, max_tokens: int | None = None) -> None:
    if max_tokens is not None:
        page.get_by_text("Options").click()
        page.get_by_label("Max tokens").fill(str(max_tokens))
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_label("Message", exact=True).press("Enter")


def current_conversation(page: Page) -> str:
    page.wait_for_function("() => location.hash.length > 1")
    return str(page.evaluate("location.hash.slice(1)"))


def answer_text(page: Page) -> str:
    return page.locator(f"{ANSWER} .body").last.inner_text()


def wait_for_partial_answer(page: Page, min_chars: int = 1) -> str:
    """The answer's text while the turn is still streaming."""
    page.wait_for_function(
        """([selector, minChars]) => {
            const all = document.querySelectorAll(selector);
            const last = all[all.length - 1];
            return last && last.dataset.status === "streaming"
                && last.querySelector(".body").textContent.length >= minChars;
        }""",
        arg=[ANSWER, min_chars],
    )
    return answer_text(page)


def test_the_answer_streams_into_the_page_as_it_is_generated(page: Page, stack: Stack) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="New conversation")).to_be_visible()
    box = page.get_by_label("Message", exact=True)
    box.fill("Name three rivers.")
    box.press("Shift+Enter")  # a new line, not a send
    box.type("Answer in one line.")
    assert box.input_value() == "Name three rivers.\nAnswer in one line."
    page.get_by_text("Options").click()
    page.get_by_label("Max tokens").fill("40")
    box.press("Enter")

    expect(page.locator("article.message.user .body")).to_have_text(
        "Name three rivers.\nAnswer in one line."
    )
    expect(box).to_have_value("")
    partial = wait_for_partial_answer(page)
    expect(page.get_by_role("button", name="Stop")).to_be_visible()
    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-status", "complete", timeout=120_000)
    final = answer_text(page)
    assert final.startswith(partial)
    assert len(final) > len(partial), "the answer arrived all at once, not streamed"
    expect(answer.locator(".usage")).to_contain_text("out tokens")
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()

    stored = stored_answer(stack, current_conversation(page))
    assert stored["content"] == final
    assert f"{stored['usage']['output_tokens']} out tokens" in answer.locator(".usage").inner_text()
    expect(page.locator(".conversation-item[aria-current=page]")).to_have_count(1)


def test_stop_ends_the_turn_as_cancelled(page: Page, stack: Stack) -> None:
    page.goto("/")
    ask(page, LONG, max_tokens=1500)
    wait_for_partial_answer(page)
    page.get_by_role("button", name="Stop").click()

    answer = page.locator(ANSWER).last
    expect(answer).to_have_attribute("data-status", "cancelled", timeout=30_000)
    expect(answer.locator(".status")).to_have_text("Stopped (cancelled)")
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    stored = stored_answer(stack, current_conversation(page))
    assert stored["status"] == "cancelled"
    assert stored["usage"]["output_tokens"] < 1500
    expect(answer.locator(".body")).to_have_text(stored["content"])


def test_a_reload_mid_answer_resumes_the_turn_and_sees_it_finish(page: Page, stack: Stack) -> None:
    page.goto("/")
    ask(page, LONG, max_tokens=200)
    conversation_id = current_conversation(page)
    wait_for_partial_answer(page)
    page.reload()

    answer = page.locator(f"{ANSWER}[data-resumed=true]")
    expect(answer).to_be_visible()
    expect(page.locator("article.message.user .body")).to_have_text(LONG)
    expect(answer).to_have_attribute("data-status", "complete", timeout=150_000)
    stored = stored_answer(stack, conversation_id)
    assert stored["status"] == "complete"
    # Replayed from the turn's start, then followed live: the whole answer, once.
    expect(answer.locator(".body")).to_have_text(stored["content"])
    expect(answer.locator(".usage")).to_contain_text("out tokens")


def test_a_dropped_connection_resumes_where_it_stopped(
    browser: Browser, stack: Stack, request: pytest.FixtureRequest
) -> None:
    proxy = CuttableProxy(stack.gateway_url)
    context = _context(browser, stack, api_key(stack), base_url=proxy.url)
    page = context.new_page()
    resumed_after: list[str] = []
    page.on(
        "request",
        lambda sent: (
            resumed_after.append(sent.headers.get("last-event-id", ""))
            if sent.url.endswith("/stream")
            else None
        ),
    )
    try:
        page.goto("/")
        ask(page, LONG, max_tokens=150)
        conversation_id = current_conversation(page)
        wait_for_partial_answer(page, min_chars=20)
        proxy.cut()

        answer = page.locator(ANSWER).last
        expect(answer).to_have_attribute("data-status", "complete", timeout=150_000)
        assert resumed_after, "the page never reattached to the turn"
        assert resumed_after[0].count(":") == 2  # with the id of the last event it saw
        stored = stored_answer(stack, conversation_id)
        expect(answer.locator(".body")).to_have_text(stored["content"])  # nothing lost or doubled
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
        context.close()
        proxy.close()


def test_the_model_picker_lists_the_catalogs_chat_models(page: Page, stack: Stack) -> None:
    with api(stack) as http:
        served = [m["id"] for m in http.get("/v1/models").json()["data"]]
    page.goto("/")
    picker = page.get_by_label("Model")
    expect(picker.locator("option")).to_have_count(len(served))
    assert picker.locator("option").all_inner_texts() == served
    assert "smollm2-135m-anthropic" in served
    assert "smollm2-135m-utility" not in served  # a utility model is not for chat

    picker.select_option("smollm2-135m-anthropic")
    ask(page, "Say hi.", max_tokens=5)
    expect(page.locator(ANSWER).last).not_to_have_attribute(
        "data-status", "streaming", timeout=60_000
    )
    with api(stack) as http:
        detail = http.get(f"/v1/conversations/{current_conversation(page)}").json()
    assert detail["model"] == "smollm2-135m-anthropic"
    expect(picker).to_be_disabled()  # a conversation keeps its model


def test_a_bad_key_opens_the_key_dialog_with_the_error(
    browser: Browser, stack: Stack, request: pytest.FixtureRequest
) -> None:
    context = _context(browser, stack, "tb_" + "x" * 43)
    page = context.new_page()
    try:
        page.goto("/")
        dialog = page.get_by_role("dialog", name="Your API key")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("Invalid or revoked API key")
        expect(page.get_by_label("API key", exact=True)).to_be_focused()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "key-dialog.png"))

        page.get_by_label("API key", exact=True).fill(api_key(stack))
        page.get_by_role("button", name="Save key").click()
        expect(dialog).to_be_hidden()
        expect(page.get_by_label("Model").locator("option")).not_to_have_count(0)
        assert page.evaluate("localStorage.getItem('tokenbus.apiKey')") == api_key(stack)
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
        context.close()


def test_the_page_fits_a_phone_screen(browser: Browser, stack: Stack) -> None:
    context = _context(
        browser, stack, api_key(stack), viewport={"width": 390, "height": 844}, is_mobile=True
    )
    page = context.new_page()
    try:
        page.goto("/")
        expect(page.get_by_label("Message", exact=True)).to_be_visible()
        expect(page.locator("#sidebar")).to_be_hidden()
        page.get_by_role("button", name="Conversations").click()
        expect(page.get_by_role("button", name="+ New conversation")).to_be_visible()
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= 390, "the page scrolls sideways on a phone"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "phone.png"))
    finally:
        context.close()


def test_the_title_appears_in_the_list_without_a_reload(page: Page) -> None:
    page.goto("/")
    ask(page, "Tell me about the sea.", max_tokens=20)
    item = page.locator(".conversation-item[aria-current=page]")
    expect(item).not_to_have_text("New conversation", timeout=60_000)
    expect(page.locator("#conversation-title")).to_have_text(item.inner_text())
    if os.environ.get("TOKENBUS_UPDATE_SCREENSHOT"):  # the README's picture
        expect(page.locator(ANSWER).last.locator(".usage")).to_contain_text("out tokens")
        page.screenshot(path=str(README_SHOT))


def test_a_tool_call_and_its_result_are_shown_readably(
    browser: Browser, scripted_stack: Stack, upstream: FaultyUpstream
) -> None:
    stack = scripted_stack
    with api(stack) as http:
        created = http.post("/v1/conversations", json={"title": "Weather", "tools": TOOLS})
        conversation_id = created.json()["id"]
    upstream.play({"kind": "tool_calls"})
    context = _context(browser, stack, api_key(stack), viewport={"width": 1100, "height": 760})
    try:
        page = context.new_page()
        page.goto(f"/#{conversation_id}")
        ask(page, "Weather in Paris, and the time in UTC?")
        answer = page.locator(ANSWER).last
        expect(answer).to_have_attribute("data-status", "complete")
        expect(answer.locator(".status")).to_have_text("Waiting for tool results")
        calls = answer.locator(".tool-call")
        expect(calls).to_have_count(2)
        expect(calls.first).to_contain_text("Calls get_weather (call_w)")
        expect(calls.first).to_contain_text('"city": "Paris"')
        # The page runs no tools; a client that does posts the results, and the page shows them.
        results = [
            {"tool_call_id": "call_w", "content": "18 C, clear"},
            {"tool_call_id": "call_t", "content": "12:00"},
        ]
        stored_answer(stack, conversation_id)
        with (
            api(stack) as http,
            http.stream(
                "POST",
                f"/v1/conversations/{conversation_id}/messages",
                json={"tool_results": results},
            ) as turn,
        ):
            assert turn.status_code == 200
            turn.read()
        page.reload()
        shown = page.locator("article.message.tool")
        expect(shown).to_have_count(2)
        expect(shown.first.locator(".body")).to_have_text("18 C, clear")
        expect(shown.first.locator(".status")).to_have_text("Result of call_w")
        expect(page.locator(ANSWER).last.locator(".body")).to_have_text("tok0 tok1 tok2 tok3 tok4")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "tool-call.png"), full_page=True)
    finally:
        context.close()
