"""Reading OpenAI stream chunks from their JSON, as the generator does on its hot path."""

from __future__ import annotations

import pytest

from contracts import TokenLogprob, TopLogprob
from services.generator.adapters.openai_provider import ChunkParts
from services.generator.errors import ProviderError


def test_a_text_chunk_gives_its_text_and_model() -> None:
    chunk = ChunkParts.read(
        {
            "model": "gpt-x",
            "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}],
        }
    )
    assert (chunk.model, chunk.text, chunk.finish_reason, chunk.usage) == (
        "gpt-x",
        "Hel",
        None,
        None,
    )


def test_the_role_chunk_and_the_finish_chunk_carry_no_text() -> None:
    first = ChunkParts.read({"choices": [{"delta": {"role": "assistant", "content": None}}]})
    last = ChunkParts.read({"choices": [{"delta": {}, "finish_reason": "length"}]})
    assert (first.text, last.text, last.finish_reason) == (None, None, "length")


def test_the_usage_chunk_has_no_choices_and_the_counts() -> None:
    chunk = ChunkParts.read(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 31,
                "completion_tokens": 3,
                "total_tokens": 34,
                "prompt_tokens_details": {"cached_tokens": 30},
            },
        }
    )
    assert chunk.usage == (31, 3, 30)
    assert ChunkParts.read(
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    ).usage == (1, 2, 0)


def test_a_chunk_with_logprobs_gives_its_tokens_in_openai_shape() -> None:
    # As llama.cpp's server sends it: OpenAI's shape plus a token `id`, which is dropped.
    bon = {"id": 30904, "token": "Bon", "bytes": [66, 111, 110], "logprob": -1.85}
    je = {"id": 46719, "token": "Je", "bytes": [74, 101], "logprob": -2.34}
    chunk = ChunkParts.read(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": "Bon"},
                    "logprobs": {"content": [{**bon, "top_logprobs": [bon, je]}]},
                    "finish_reason": None,
                }
            ]
        }
    )
    assert chunk.text == "Bon"
    assert chunk.logprobs == (
        TokenLogprob(
            token="Bon",
            logprob=-1.85,
            bytes=(66, 111, 110),
            top_logprobs=(
                TopLogprob(token="Bon", logprob=-1.85, bytes=(66, 111, 110)),
                TopLogprob(token="Je", logprob=-2.34, bytes=(74, 101)),
            ),
        ),
    )


@pytest.mark.parametrize("logprobs", [None, {"content": None}, {"content": []}])
def test_a_chunk_without_logprobs_has_none(logprobs: object) -> None:
    chunk = ChunkParts.read({"choices": [{"delta": {"content": "x"}, "logprobs": logprobs}]})
    assert chunk.logprobs == ()


@pytest.mark.parametrize(
    "data",
    [
        [],
        "text",
        {"choices": "abc"},
        {"choices": ["abc"]},
        {"choices": [{"delta": "abc"}]},
        {"choices": [{"delta": {"content": 42}}]},
        {"choices": [{"delta": {}, "finish_reason": 1}]},
        {"model": 7, "choices": []},
        {"choices": [], "usage": {"prompt_tokens": "31", "completion_tokens": 3}},
        {"choices": [], "usage": {"completion_tokens": 3}},
        {"choices": [{"delta": {}, "logprobs": "abc"}]},
        {"choices": [{"delta": {}, "logprobs": {"content": "abc"}}]},
        {"choices": [{"delta": {}, "logprobs": {"content": [{"token": "a"}]}}]},
        {"choices": [{"delta": {}, "logprobs": {"content": [{"token": 1, "logprob": -1}]}}]},
    ],
)
def test_a_chunk_of_another_shape_is_a_clean_retryable_upstream_error(data: object) -> None:
    with pytest.raises(ProviderError) as caught:
        ChunkParts.read(data)
    assert caught.value.code == "upstream_error"
    assert caught.value.retryable
