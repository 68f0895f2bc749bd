"""The benchmark's tool-call streams: what the simulator sends, what the load client checks."""

from __future__ import annotations

import json

import httpx
import pytest

from bench.loadgen import Kind, StreamResult, _body, _finish
from bench.report import paired_ratios
from bench.toolstream import call_arguments, pieces
from bench.upstream_sim import Simulator


async def _answer(kind: Kind, tokens: int) -> list[bytes]:
    """The `data:` payloads the simulator streams for one request of this kind."""
    sim = Simulator(ttft_s=0, itl_s=0, tokens=tokens)
    transport = httpx.ASGITransport(app=sim)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        response = await client.post(
            "/v1/chat/completions", content=_body("sim", tokens, "r1", kind)
        )
    return [line[5:].strip() for line in response.content.split(b"\n") if line.startswith(b"data:")]


def _read(kind: Kind, tokens: int, payloads: list[bytes]) -> StreamResult:
    result = StreamResult(kind=kind, expect=tokens)
    last = 0.0
    for data in payloads:
        last = result.take(data, 0.0, last)
    return _finish(result, 0.0, tokens)


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7, 40])
def test_tool_call_pieces_join_into_each_calls_json_arguments(total: int) -> None:
    sent = pieces(total)

    assert len(sent) == total
    assert [p.index for p in sent] == [n % 2 for n in range(total)]
    assert [p.name is not None for p in sent] == [n < 2 for n in range(total)]
    for arguments in call_arguments(total):
        assert set(json.loads(arguments)) == {"q"}


async def test_simulator_answers_a_request_with_tools_with_as_many_tool_call_chunks() -> None:
    payloads = await _answer("tools", 12)

    result = _read("tools", 12, payloads)

    assert result.error is None
    assert (result.tokens, result.in_order, result.finish_reason) == (12, True, "tool_calls")
    assert len(payloads) == len(await _answer("text", 12))


async def test_simulator_answers_a_request_without_tools_with_text() -> None:
    result = _read("text", 12, await _answer("text", 12))

    assert (result.error, result.tokens, result.in_order) == (None, 12, True)


async def test_client_sees_tool_call_pieces_out_of_order_or_missing() -> None:
    payloads = await _answer("tools", 12)
    swapped = [*payloads[:3], payloads[4], payloads[3], *payloads[5:]]
    missing = [p for n, p in enumerate(payloads) if n != 5]

    assert not _read("tools", 12, swapped).in_order
    assert _read("tools", 12, missing).error == "got 11 of 12 tokens"


def test_paired_ratios_divide_each_rounds_tool_run_by_its_text_run() -> None:
    rows = [
        {"route": "tokenbus", "round": 0, "kind": "text", "cpu_s_per_1k_tokens": 0.5},
        {"route": "tokenbus", "round": 0, "kind": "tools", "cpu_s_per_1k_tokens": 0.6},
        {"route": "tokenbus", "round": 1, "kind": "tools", "cpu_s_per_1k_tokens": 0.9},
        {"route": "tokenbus", "round": 1, "kind": "text", "cpu_s_per_1k_tokens": 1.0},
        {"route": "tokenbus", "round": 2, "kind": "text", "cpu_s_per_1k_tokens": 1.0},
        {"route": "direct", "round": 0, "kind": "tools", "cpu_s_per_1k_tokens": None},
    ]

    ratios = paired_ratios(rows, "tokenbus", lambda r: r["cpu_s_per_1k_tokens"])

    assert ratios == pytest.approx([1.2, 0.9])
