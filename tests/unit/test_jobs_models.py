"""What POST /v1/jobs accepts, and the record it writes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts import ChatMessage, ChatRequest
from services.gateway.jobs.models import JobRecord, NewJob

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/hook", "https://example.com/hook?token=abc"]
)
def test_accepts_an_http_or_https_webhook_url(url: str) -> None:
    assert str(NewJob.model_validate({**BODY, "webhook_url": url}).webhook_url) == url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "not a url",
        "/relative/hook",
        "https://example.com/" + "a" * 2048,
    ],
)
def test_refuses_a_webhook_url_that_is_not_an_http_url_of_at_most_2048_chars(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        NewJob.model_validate({**BODY, "webhook_url": url})
    assert caught.value.errors()[0]["loc"] == ("webhook_url",)


def test_the_webhook_is_optional() -> None:
    assert NewJob.model_validate(BODY).webhook_url is None


def test_a_record_is_keyed_by_the_turn_it_runs() -> None:
    request = ChatRequest(
        correlation_id="c",
        gateway_id="jobs",
        conversation_id="t",
        turn_id="t",
        model="m",
        messages=(ChatMessage(role="user", content="hi"),),
    )
    record = JobRecord.of(request, "http://h/")
    assert (record.id, record.turn_id, record.conversation_id) == ("t", "t", "t")
    assert (record.webhook_status, record.webhook_attempts) == ("pending", 0)
    assert JobRecord.of(request, None).webhook_status == "none"
