"""Tools in the conversations API: calls on the SSE stream, results posted back, resume.

The upstream is the scripted one (two interleaved calls in one streamed answer,
OpenAI's wire format), so what reaches the provider on the next turn is checked
exactly. Conversations are created with a title, so no titler call takes a step
of the script.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_conversations import SseEvent, send_message, sse
from tests.e2e.test_tools import TOOLS
from tests.faults.upstream import FaultyUpstream
from tests.support import Stack

pytestmark = pytest.mark.e2e

MODEL = "scripted"
CALLS = {"call_w": ("get_weather", {"city": "Paris"}), "call_t": ("get_time", {"zone": "UTC"})}
RESULTS = [
    {"tool_call_id": "call_w", "content": "18 C, clear"},
    {"tool_call_id": "call_t", "content": "12:00"},
]


@pytest.fixture
async def http(scripted_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=scripted_stack.gateway_url, headers=scripted_stack.auth, timeout=30
    ) as client:
        yield client


async def new_conversation(http: httpx.AsyncClient, **fields: Any) -> str:
    response = await http.post("/v1/conversations", json={"title": "tools", **fields})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def whole_calls(events: list[SseEvent]) -> dict[str, tuple[str, Any]]:
    return {
        e.data["id"]: (e.data["name"], json.loads(e.data["arguments"]))
        for e in events
        if e.event == "tool_call"
    }


async def test_a_tool_loop_in_a_conversation_reaches_the_provider_as_openai_history(
    http: httpx.AsyncClient, upstream: FaultyUpstream
) -> None:
    conversation_id = await new_conversation(http, tools=TOOLS)
    upstream.play({"kind": "tool_calls"}, {"kind": "ok", "tokens": 3})

    ask = {"content": "Weather in Paris, time in UTC?"}
    events = await send_message(http, conversation_id, ask)
    kinds = [e.event for e in events]
    assert "tool_call_delta" in kinds
    assert whole_calls(events) == CALLS
    assert kinds.index("tool_call") < kinds.index("done")
    assert events[-1].data["finish_reason"] == "tool_calls"
    offered = upstream.bodies[-1]
    assert [t["function"]["name"] for t in offered["tools"]] == ["get_weather", "get_time"]

    stored = (await http.get(f"/v1/conversations/{conversation_id}")).json()
    assert [t["function"]["name"] for t in stored["tools"]] == ["get_weather", "get_time"]
    answer = stored["messages"][-1]
    assert answer["role"] == "assistant"
    assert answer["content"] == ""
    assert {c["id"]: c["function"]["name"] for c in answer["tool_calls"]} == {
        "call_w": "get_weather",
        "call_t": "get_time",
    }

    events = await send_message(http, conversation_id, {"tool_results": RESULTS})
    assert events[-1].data["finish_reason"] == "stop"
    assert "".join(e.data["text"] for e in events if e.event == "delta") == "tok0 tok1 tok2 "
    history = upstream.bodies[-1]["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in history[1]["tool_calls"]] == ["call_w", "call_t"]
    assert json.loads(history[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert [(m["tool_call_id"], m["content"]) for m in history[2:]] == [
        ("call_w", "18 C, clear"),
        ("call_t", "12:00"),
    ]
    assert upstream.bodies[-1]["tools"] == offered["tools"]

    stored = (await http.get(f"/v1/conversations/{conversation_id}")).json()
    assert [m["role"] for m in stored["messages"]] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    assert stored["messages"][2]["tool_call_id"] == "call_w"
    assert "tool_calls" not in stored["messages"][0]  # a plain message reads as before


async def test_a_resume_in_the_middle_of_a_tool_call_gives_exactly_the_missing_events(
    http: httpx.AsyncClient, upstream: FaultyUpstream
) -> None:
    conversation_id = await new_conversation(http)
    upstream.play({"kind": "tool_calls"})
    first: list[SseEvent] = []
    async with http.stream(
        "POST",
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": "Weather and time?", "tools": TOOLS, "tool_choice": "required"},
    ) as response:
        async for event in sse(response):
            first.append(event)
            if event.event == "tool_call_delta":
                break  # the client drops here, in the middle of the first call
    assert upstream.bodies[-1]["tool_choice"] == "required"
    async with http.stream(
        "GET",
        f"/v1/conversations/{conversation_id}/stream",
        headers={"Last-Event-ID": str(first[-1].id)},
    ) as response:
        rest = [e async for e in sse(response)]

    had = [e.id for e in first if e.id]
    resumed = [e.id for e in rest if e.id]
    assert not set(had) & set(resumed)
    pieces = [
        p for e in (*first, *rest) if e.event == "tool_call_delta" for p in e.data["tool_calls"]
    ]
    assert len(pieces) == 5  # every streamed piece exactly once, across both connections
    arguments: dict[int, str] = {}
    for piece in pieces:
        arguments[piece["index"]] = arguments.get(piece["index"], "") + piece["arguments"]
    assert {i: json.loads(a) for i, a in arguments.items()} == {
        0: {"city": "Paris"},
        1: {"zone": "UTC"},
    }
    # The whole calls come with `done`, built from every piece, also those sent before.
    assert whole_calls(rest) == CALLS
    assert rest[-1].event == "done"
    assert rest[-1].data["finish_reason"] == "tool_calls"


async def test_a_plain_message_after_unanswered_calls_leaves_them_out_of_the_context(
    http: httpx.AsyncClient, upstream: FaultyUpstream
) -> None:
    conversation_id = await new_conversation(http, tools=TOOLS)
    upstream.play({"kind": "tool_calls"}, {"kind": "ok", "tokens": 2})
    await send_message(http, conversation_id, {"content": "Weather?"})
    events = await send_message(http, conversation_id, {"content": "Never mind, say hi."})
    assert events[-1].event == "done"
    history = upstream.bodies[-1]["messages"]
    # No provider takes an unanswered call followed by a user message.
    assert [m["role"] for m in history] == ["user", "user"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"tool_results": [{"tool_call_id": "call_nope", "content": "x"}]},
            "tool_results.0.tool_call_id",
        ),
        ({"tool_results": [RESULTS[0]]}, "tool_results"),
        (
            {"tool_results": [RESULTS[0], RESULTS[0]]},
            "tool_results",
        ),
        (
            {"content": "hi", "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
        (
            {
                "content": "hi",
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "string"}},
                    }
                ],
            },
            "tools.0.function.parameters",
        ),
        (
            {"content": "hi", "tools": [{"type": "function", "function": {}}]},
            "tools.0.function.name",
        ),
        ({}, "content"),
    ],
)
async def test_bad_tool_input_is_a_400_naming_the_field_and_nothing_is_published(
    http: httpx.AsyncClient, upstream: FaultyUpstream, body: dict[str, Any], param: str
) -> None:
    conversation_id = await new_conversation(http, tools=TOOLS)
    upstream.play({"kind": "tool_calls"})
    await send_message(http, conversation_id, {"content": "Weather and time?"})
    before = len(upstream.bodies)
    response = await http.post(f"/v1/conversations/{conversation_id}/messages", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_value", param)
    stored = (await http.get(f"/v1/conversations/{conversation_id}")).json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["active_turn_id"] is None
    assert len(upstream.bodies) == before


async def test_tools_are_set_and_replaced_on_the_conversation(http: httpx.AsyncClient) -> None:
    bad = await http.post("/v1/conversations", json={"tools": [TOOLS[0], TOOLS[0]]})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "tools"
    conversation_id = await new_conversation(http)
    changed = await http.patch(f"/v1/conversations/{conversation_id}", json={"tools": TOOLS[:1]})
    assert changed.status_code == 200, changed.text
    assert [t["function"]["name"] for t in changed.json()["tools"]] == ["get_weather"]
    assert changed.json()["title"] == "tools"
    nothing = await http.patch(f"/v1/conversations/{conversation_id}", json={})
    assert nothing.status_code == 400
