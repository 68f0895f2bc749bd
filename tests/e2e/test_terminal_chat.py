"""`tokenbus chat` as a user runs it: a real process, stdin piped, against the real stack."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from tests.support import Stack

pytestmark = pytest.mark.e2e

LONG = "Write a very long story about a dragon who learns to cook."


def api_key(stack: Stack) -> str:
    return str(getattr(stack, "api_key", "dev"))


def chat(stack: Stack, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "chat", "--url", stack.gateway_url, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TOKENBUS_API_KEY": api_key(stack), "PYTHONUNBUFFERED": "1"},
    )


def conversation_ids(stderr: str) -> list[str]:
    return re.findall(r"conversation (conv\w+)", stderr)


def stored(stack: Stack, conversation_id: str) -> dict[str, Any]:
    """The conversation once no turn runs in it any more."""
    deadline = time.monotonic() + 60
    with httpx.Client(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {api_key(stack)}"}
    ) as http:
        while True:
            body: dict[str, Any] = http.get(f"/v1/conversations/{conversation_id}").json()
            if body["active_turn_id"] is None and body["messages"][-1]["role"] == "assistant":
                return body
            assert time.monotonic() < deadline, "the turn never ended"
            time.sleep(0.2)


class Output:
    """A pipe read on a thread, so a test can wait for text while the process runs."""

    def __init__(self, pipe: Any) -> None:
        self.text = ""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: Any) -> None:
        while chunk := pipe.read(1):
            with self._lock:
                self.text += chunk

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            assert time.monotonic() < deadline, f"never printed {pattern!r}:\n{self.text}"
            time.sleep(0.05)
        return self.text

    def join(self) -> str:
        self._thread.join(timeout=30)
        return self.text


def test_chat_prints_the_streamed_answer(stack: Stack) -> None:
    process = chat(stack, "--max-tokens", "30")
    out, err = process.communicate("Name three rivers.\n", timeout=150)
    assert process.returncode == 0, err
    [conversation_id] = conversation_ids(err)
    answer = stored(stack, conversation_id)["messages"][-1]
    assert answer["content"].strip()
    assert answer["content"].strip() in out
    assert f"{answer['usage']['output_tokens']} out tokens" in err


def test_ctrl_c_cancels_the_turn_and_returns_to_the_prompt(stack: Stack) -> None:
    process = chat(stack, "--max-tokens", "400", "--temperature", "0")
    assert process.stdin is not None
    out, err = Output(process.stdout), Output(process.stderr)
    process.stdin.write(LONG + "\n")
    process.stdin.flush()
    out.wait_for(r"\w+\W+\w+")  # a few words of the answer
    process.send_signal(signal.SIGINT)
    err.wait_for(r"cancelled")

    # Still running, still reading: a new conversation gets a normal answer.
    process.stdin.write("/new\nSay hi.\n")
    process.stdin.close()
    assert process.wait(timeout=150) == 0
    printed = err.join()
    out.join()
    first, second = conversation_ids(printed)
    cancelled = stored(stack, first)["messages"][-1]
    assert cancelled["status"] == "cancelled"
    assert cancelled["usage"]["output_tokens"] < 400
    assert stored(stack, second)["messages"][-1]["status"] == "complete"


def test_list_shows_history_and_a_conversation_can_be_continued(stack: Stack) -> None:
    process = chat(stack, "--max-tokens", "20")
    _, err = process.communicate("Tell me about the sea.\n", timeout=150)
    [conversation_id] = conversation_ids(err)
    stored(stack, conversation_id)

    deadline = time.monotonic() + 60
    while True:  # the titler names it just after the first turn
        listed = subprocess.run(
            [sys.executable, "-m", "services.cli.main", "chat", "--list", "--url",
             stack.gateway_url, "--api-key", api_key(stack)],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        row = next(line.split("\t") for line in listed.splitlines() if conversation_id in line)
        if row[1] != "(untitled)" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert row[1] != "(untitled)", "the conversation never got a title"

    again = chat(stack, "--conversation", conversation_id, "--max-tokens", "20")
    out, err = again.communicate("And the mountains?\n", timeout=150)
    assert again.returncode == 0, err
    assert "you > Tell me about the sea." in out  # the history is shown first
    roles = [m["role"] for m in stored(stack, conversation_id)["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
