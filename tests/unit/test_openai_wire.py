"""The gateway's SSE bytes are exactly what OpenAI clients parse."""

from __future__ import annotations

import json

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from contracts import TokenLogprob, TopLogprob, TurnDelta, TurnFailed, TurnUsage
from services.gateway.openai.wire import DONE, ChunkWriter, completion_body
from services.gateway.turns.items import Reset, TurnTranscript

TURN = {"correlation_id": "c", "conversation_id": "v", "turn_id": "t", "seq": 1}


def parse(frame: bytes) -> dict[str, object]:
    assert frame.startswith(b"data: ")
    assert frame.endswith(b"\n\n")
    data: dict[str, object] = json.loads(frame[len(b"data: ") : -2])
    return data


def test_delta_chunk_escapes_any_text_into_valid_json() -> None:
    writer = ChunkWriter("chatcmpl-1", "m", include_usage=False)
    for text in ['quote " backslash \\ newline \n', "emoji 🙂", "</script>", "\u2028"]:
        chunk = parse(writer.delta(text))
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["choices"] == [
            {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
        ]
        assert "usage" not in chunk


def test_with_include_usage_every_chunk_has_usage_null_and_a_final_usage_chunk() -> None:
    writer = ChunkWriter("chatcmpl-1", "m", include_usage=True)
    assert parse(writer.delta("x"))["usage"] is None
    assert parse(writer.role())["usage"] is None
    usage = TurnUsage(**TURN, model="m", provider_model="p", input_tokens=3, output_tokens=5)
    final = parse(writer.usage(usage))
    assert final["choices"] == []
    assert final["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


def test_without_include_usage_no_usage_chunk_is_sent() -> None:
    assert ChunkWriter("id", "m", include_usage=False).usage(None) == b""


def test_cancelled_maps_to_openai_stop() -> None:
    chunk = parse(ChunkWriter("id", "m", include_usage=False).finish("cancelled"))
    assert chunk["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]


def test_a_failed_stream_ends_with_an_error_object_not_done() -> None:
    failure = TurnFailed(**TURN, code="rate_limited", message="slow down")
    frame = ChunkWriter("id", "m", include_usage=False).error(failure)
    assert DONE not in frame
    assert parse(frame) == {
        "error": {
            "message": "slow down",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limited",
        }
    }


def test_completion_body_has_openai_shape() -> None:
    body = completion_body("id", "m", "hello", "length", None)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "hello",
        "refusal": None,
    }
    assert body["choices"][0]["finish_reason"] == "length"


BON = TokenLogprob(
    token="Bon",
    logprob=-1.85,
    bytes=(66, 111, 110),
    top_logprobs=(TopLogprob(token="Bon", logprob=-1.85, bytes=(66, 111, 110)),),
)
JOUR = TokenLogprob(token="jour", logprob=-0.02, bytes=None, top_logprobs=())
WIRE_BON = {
    "token": "Bon",
    "logprob": -1.85,
    "bytes": [66, 111, 110],
    "top_logprobs": [{"token": "Bon", "logprob": -1.85, "bytes": [66, 111, 110]}],
}


def test_a_delta_with_logprobs_carries_them_as_openai_streams_them() -> None:
    writer = ChunkWriter("chatcmpl-1", "m", include_usage=True)
    chunk = parse(writer.delta("Bonjour", (BON, JOUR)))
    assert chunk["choices"] == [
        {
            "index": 0,
            "delta": {"content": "Bonjour"},
            "logprobs": {
                "content": [
                    WIRE_BON,
                    {"token": "jour", "logprob": -0.02, "bytes": None, "top_logprobs": []},
                ],
                "refusal": None,
            },
            "finish_reason": None,
        }
    ]
    parsed = ChatCompletionChunk.model_validate(chunk)
    content = parsed.choices[0].logprobs.content  # type: ignore[union-attr]
    assert [t.token for t in content or ()] == ["Bon", "jour"]


def test_a_delta_without_logprobs_is_byte_for_byte_what_it_was() -> None:
    writer = ChunkWriter("chatcmpl-1", "m", include_usage=False)
    assert writer.delta("x", ()) == writer.delta("x")
    assert b'"logprobs":null' in writer.delta("x")


def test_completion_body_carries_every_token_logprob_in_order() -> None:
    body = completion_body("id", "m", "Bonjour", "stop", None, logprobs=(BON, JOUR))
    assert body["choices"][0]["logprobs"]["content"][0] == WIRE_BON
    assert body["choices"][0]["logprobs"]["refusal"] is None
    parsed = ChatCompletion.model_validate(body)
    content = parsed.choices[0].logprobs.content  # type: ignore[union-attr]
    assert [t.token for t in content or ()] == ["Bon", "jour"]
    assert completion_body("id", "m", "hi", "stop", None)["choices"][0]["logprobs"] is None


def test_the_transcript_keeps_the_logprobs_of_the_last_attempt_only() -> None:
    transcript = TurnTranscript()
    transcript.add(TurnDelta(**TURN, text="Bon", logprobs=(JOUR,)))
    transcript.add(Reset(attempt=2))
    transcript.add(TurnDelta(**TURN, text="Bon", logprobs=(BON,)))
    transcript.add(TurnDelta(**{**TURN, "seq": 2}, text="jour", logprobs=(JOUR,)))
    transcript.add(TurnDelta(**{**TURN, "seq": 3}, text="!"))
    assert transcript.logprobs == (BON, JOUR)
