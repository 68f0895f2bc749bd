from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from contracts import (
    ChatMessage,
    ChatRequest,
    DeadLetter,
    GenerationParams,
    TokenLogprob,
    TopLogprob,
    TurnCompleted,
    TurnDelta,
    TurnFailed,
    TurnUsage,
    parse_turn_event,
)
from contracts.schema import json_schemas, write_schemas
from contracts.subjects import (
    gateway_turns_filter,
    turn_event_subject,
    turn_filter,
    turn_id_from_subject,
)

TURN = {"correlation_id": "corr", "conversation_id": "conv", "turn_id": "turn", "seq": 1}


def a_request(**overrides: object) -> ChatRequest:
    fields: dict[str, object] = {
        "correlation_id": "corr",
        "gateway_id": "gw1",
        "conversation_id": "conv",
        "turn_id": "turn",
        "model": "m",
        "messages": [ChatMessage(role="user", content="hi")],
    }
    return ChatRequest(**{**fields, **overrides})


@pytest.mark.parametrize(
    "event",
    [
        TurnDelta(**TURN, text="héllo ✓"),
        TurnDelta(
            **TURN,
            text="Bon",
            logprobs=(
                TokenLogprob(
                    token="Bon",
                    logprob=-0.5,
                    bytes=(66, 111, 110),
                    top_logprobs=(TopLogprob(token="Bon", logprob=-0.5, bytes=(66, 111, 110)),),
                ),
            ),
        ),
        TurnUsage(**TURN, model="m", provider_model="p", input_tokens=3, output_tokens=4),
        TurnCompleted(**TURN, model="m", finish_reason="length"),
        TurnFailed(**TURN, code="timeout", message="late"),
    ],
)
def test_turn_events_round_trip_through_json(event: TurnDelta) -> None:
    assert parse_turn_event(event.model_dump_json()) == event


def test_chat_request_round_trips_through_json() -> None:
    request = a_request()
    assert ChatRequest.model_validate_json(request.model_dump_json()) == request


def test_a_delta_or_params_without_logprobs_read_as_they_did_before_the_field() -> None:
    delta = json.loads(TurnDelta(**TURN, text="x").model_dump_json())
    params = json.loads(GenerationParams().model_dump_json())
    assert "logprobs" not in delta
    assert "logprobs" not in params
    assert "top_logprobs" not in params


def test_contracts_are_frozen() -> None:
    with pytest.raises(ValidationError):
        a_request().model = "other"  # type: ignore[misc]


def test_readers_ignore_fields_added_by_newer_producers() -> None:
    data = json.loads(a_request().model_dump_json())
    data["added_in_v1_9"] = {"anything": True}
    assert ChatRequest.model_validate(data).turn_id == "turn"


@pytest.mark.parametrize("bad_id", ["has.dot", "has space", "*", ">", "", "x" * 65])
def test_ids_must_be_single_subject_tokens(bad_id: str) -> None:
    with pytest.raises(ValidationError):
        a_request(turn_id=bad_id)


def test_a_request_needs_at_least_one_message() -> None:
    with pytest.raises(ValidationError):
        a_request(messages=[])


def test_unknown_event_type_is_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_turn_event(json.dumps({**TURN, "type": "turn.unknown"}))


def test_every_contract_exports_a_json_schema(tmp_path) -> None:  # type: ignore[no-untyped-def]
    schemas = json_schemas()
    assert set(schemas) == {
        "chat.request.v1",
        "turn.delta.v1",
        "turn.usage.v1",
        "turn.completed.v1",
        "turn.failed.v1",
        "title.request.v1",
        "conversation.titled.v1",
        "dead_letter.v1",
        "embedding.request.v1",
        "embedding.reply.v1",
        "semantic.entry.v1",
        "semantic.tombstone.v1",
    }
    for schema in schemas.values():
        assert {"event_id", "correlation_id", "occurred_at", "schema_version"} <= set(
            schema["properties"]
        )
    written = write_schemas(tmp_path)
    assert len(written) == len(schemas)
    assert json.loads(written[0].read_text())["type"] == "object"


def test_dead_letter_keeps_reason_and_payload() -> None:
    letter = DeadLetter(
        correlation_id="c", consumer="generator", original_subject="s", reason="why", payload="{"
    )
    assert DeadLetter.model_validate_json(letter.model_dump_json()).reason == "why"


def test_turn_subjects_route_by_gateway_and_replay_by_turn() -> None:
    subject = turn_event_subject("gw1", "conv", "turn", "delta")
    assert subject == "tokenbus.v1.turn.gw1.conv.turn.delta"
    assert turn_id_from_subject(subject) == "turn"
    assert gateway_turns_filter("gw1") == "tokenbus.v1.turn.gw1.>"
    assert turn_filter("conv", "turn") == "tokenbus.v1.turn.*.conv.turn.*"
