"""The API document tells the truth: schemathesis' response checks against the real gateway.

The gateway app runs in this process through schemathesis' ASGI transport (which
runs the app's lifespan), on the bus of the session's `tokenbus up` stack: a
request that passes validation is queued, and the stack's generator answers it
with the real local model. Every response must have a documented status and
content type, match the documented schema (errors: the one error body; streams:
each SSE event, as the document's itemSchema describes it) and be no 5xx.

Requests are generated for every operation, valid and invalid ones, plus a few
written here that reach the successful answers random input rarely does (a
served model, an existing conversation).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.gateway.config import GatewaySettings
from services.gateway.main import create_app
from services.runtime.catalog import load_catalog
from tests.support import Stack

pytestmark = pytest.mark.e2e

Case = schemathesis.Case[Any]
Operation = schemathesis.APIOperation[Any, Any, Any, Any]

MODEL = "smollm2-135m"
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    not_a_server_error,
]
EXAMPLES = int(os.environ.get("TOKENBUS_CONFORMANCE_EXAMPLES", "6"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: a finding reproduces
    database=None,
    phases=[Phase.explicit, Phase.generate],  # report what failed, do not shrink for minutes
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[schemathesis.BaseSchema]:
    # The stack's catalog; this gateway never calls the model, it only needs the names.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TOKENBUS_LOCAL_MODEL_URL", stack.upstream_url.removesuffix("/v1"))
        catalog = load_catalog()
    options: dict[str, Any] = {
        "nats_url": stack.nats_url,
        # Bounded turns: a first turn's stream does not wait for its title, and no
        # generated max_tokens keeps the model busy for long.
        "title_wait_s": 0,
        "request_deadline_s": 10,
    }
    app = create_app(GatewaySettings(**options), catalog)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    asgi.shutdown_lifespans()


ASK = {"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": "Say hello."}]}
# Successful answers random input rarely reaches: (method, path, case arguments).
WRITTEN: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/chat/completions", {"body": ASK}),
    (
        "POST",
        "/v1/chat/completions",
        {"body": {**ASK, "stream": True, "stream_options": {"include_usage": True}}},
    ),
    ("POST", "/v1/jobs", {"body": ASK}),
    ("GET", "/v1/models/{model_id}", {"path_parameters": {"model_id": MODEL}}),
]
# The same, on a conversation that exists (its id is filled in).
ON_A_CONVERSATION: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/conversations/{conversation_id}/messages", {"body": {"content": "Hi"}}),
    ("GET", "/v1/conversations/{conversation_id}/stream", {}),
    ("POST", "/v1/conversations/{conversation_id}/cancel", {}),
    ("GET", "/v1/conversations/{conversation_id}", {}),
    ("PATCH", "/v1/conversations/{conversation_id}", {"body": {"title": "Rivers"}}),
]


def call(case: Case, stack: Stack) -> Any:
    return case.call_and_validate(headers=stack.auth, checks=CHECKS, timeout=30)


def written(
    api: schemathesis.BaseSchema, stack: Stack, method: str, path: str, **case: Any
) -> list[str]:
    if "body" in case:
        case["media_type"] = "application/json"
    try:
        call(api[path][method].Case(**case), stack)
    except (FailureGroup, Exception) as failure:
        return [f"{method} {path} (written): {_summary(failure)}"]
    return []


def fuzz(operation: Operation, stack: Stack, **fixed: Any) -> list[str]:
    """Generated requests, valid and invalid; the findings, one per mode at most."""
    findings = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @SETTINGS
        @given(case=operation.as_strategy(generation_mode=mode, **fixed))
        def check(case: Case) -> None:
            call(case, stack)

        try:
            check()
        except Unsatisfiable:  # nothing to make invalid (no body, no constrained parameter)
            continue
        except (FailureGroup, Exception) as failure:  # keep going, report them all
            findings.append(f"{operation.label} ({mode}): {_summary(failure)}")
    return findings


def _summary(failure: BaseException) -> str:
    found = failure.exceptions if isinstance(failure, BaseExceptionGroup) else (failure,)
    return "; ".join(
        f"{getattr(each, 'title', type(each).__name__)}: {getattr(each, 'message', each)}"
        for each in found
    )


def test_every_response_is_the_documented_one(api: schemathesis.BaseSchema, stack: Stack) -> None:
    findings: list[str] = []
    for method, path, case in WRITTEN:
        findings += written(api, stack, method, path, **case)
    created = call(api["/v1/conversations"]["POST"].Case(body={}), stack).json()
    mine = {"conversation_id": created["id"]}
    for method, path, case in ON_A_CONVERSATION:
        findings += written(api, stack, method, path, path_parameters=mine, **case)

    for result in api.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid document raises here
        findings += fuzz(operation, stack)
        if "{conversation_id}" in operation.path and operation.method != "delete":
            findings += fuzz(operation, stack, path_parameters=mine)
    findings += written(
        api, stack, "DELETE", "/v1/conversations/{conversation_id}", path_parameters=mine
    )

    assert not findings, "\n\n".join(findings)
