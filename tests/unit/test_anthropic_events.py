"""Reading Anthropic Messages stream events from their JSON, as the generator does per token."""

from __future__ import annotations

import pytest

from services.generator.adapters.anthropic_provider import MessagesEvent
from services.generator.errors import ProviderError


def test_message_start_gives_the_model_and_the_prompt_with_its_cached_part() -> None:
    event = MessagesEvent.read(
        {
            "type": "message_start",
            "message": {
                "model": "claude-haiku-4-5",
                "usage": {
                    "input_tokens": 3,
                    "cache_read_input_tokens": 30,
                    "cache_creation_input_tokens": 5,
                    "output_tokens": 1,
                },
            },
        }
    )
    assert (event.kind, event.model, event.prompt) == (
        "message_start",
        "claude-haiku-4-5",
        (38, 30),
    )


def test_a_text_delta_gives_its_text_and_other_deltas_none() -> None:
    text = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Hi"},
    }
    thinking = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "hmm"},
    }
    assert MessagesEvent.read(text).text == "Hi"
    assert MessagesEvent.read(thinking).text is None


def test_message_delta_gives_the_output_count_and_the_stop_reason() -> None:
    event = MessagesEvent.read(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens"},
            "usage": {"output_tokens": 7},
        }
    )
    assert (event.output_tokens, event.stop_reason) == (7, "max_tokens")


def test_events_the_relay_does_not_need_are_read_as_nothing() -> None:
    for kind in ("content_block_start", "content_block_stop", "message_stop", "something_new"):
        event = MessagesEvent.read({"type": kind})
        assert (event.kind, event.text, event.prompt, event.output_tokens) == (
            kind,
            None,
            None,
            None,
        )


@pytest.mark.parametrize(
    "data",
    [
        "text",
        {"type": 5},
        {"type": "message_start"},
        {"type": "message_start", "message": {"usage": {"input_tokens": "3"}}},
        {"type": "message_start", "message": {"model": 1, "usage": {"input_tokens": 3}}},
        {"type": "content_block_delta", "delta": {"type": "text_delta", "text": 3}},
        {"type": "content_block_delta", "delta": "x"},
        {"type": "message_delta", "delta": {"stop_reason": None}, "usage": {}},
        {"type": "message_delta", "delta": {"stop_reason": 1}, "usage": {"output_tokens": 1}},
    ],
)
def test_an_event_of_another_shape_is_a_clean_retryable_upstream_error(data: object) -> None:
    with pytest.raises(ProviderError) as caught:
        MessagesEvent.read(data)
    assert caught.value.code == "upstream_error"
    assert caught.value.retryable
