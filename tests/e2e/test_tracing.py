"""One request, one trace: gateway -> bus -> generator -> model call -> events -> usage.

A small OTLP/HTTP receiver stands in for the collector; it decodes the real
protobuf the services' exporters send.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from contracts import new_id
from services.runtime.embedded_nats import free_port
from tests.support import Stack, running_stack

pytestmark = pytest.mark.e2e

MODEL = "smollm2-135m"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]


def _plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_plain(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


class Receiver:
    """POST /v1/traces: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    def add(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _plain(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            service=str(resource.get("service.name")),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes={a.key: _plain(a.value) for a in span.attributes},
                        )
                    )
        with self._lock:
            self.spans.extend(received)

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)


@contextlib.contextmanager
def otlp_receiver() -> Iterator[tuple[str, Receiver]]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            receiver.add(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Receiver]]:
    with otlp_receiver() as (url, receiver):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_BSP_SCHEDULE_DELAY": "200"}
        with running_stack(Path(tmp_path_factory.mktemp("traced")), env=env) as stack:
            yield stack, receiver


def the_trace_of(spans: list[ReceivedSpan], request_id: str) -> list[ReceivedSpan]:
    roots = [s for s in spans if s.attributes.get("tokenbus.correlation_id") == request_id]
    if not roots:
        return []
    return [s for s in spans if s.trace_id == roots[0].trace_id]


async def test_one_request_is_one_connected_trace_across_every_service(
    traced: tuple[Stack, Receiver],
) -> None:
    stack, receiver = traced
    request_id = f"traced-{new_id()}"
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as http:
        response = await http.post(
            "/v1/chat/completions",
            headers={**stack.auth, "X-Request-ID": request_id},
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": "Name a fruit."}],
                "max_tokens": 12,
            },
        )
    assert response.status_code == 200, response.text

    wanted = {"tokenbus-gateway", "tokenbus-generator", "tokenbus-usage"}
    spans: list[ReceivedSpan] = []
    for _ in range(100):  # batches leave every 200 ms; the usage service comes last
        spans = the_trace_of(receiver.snapshot(), request_id)
        if wanted <= {s.service for s in spans} and any(s.name.startswith("chat ") for s in spans):
            break
        await asyncio.sleep(0.2)
    assert wanted <= {s.service for s in spans}, [(s.service, s.name) for s in spans]

    # Connected: exactly one root (the gateway's server span), every other parent is in the trace.
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if not s.parent_span_id]
    assert [(r.service, r.name) for r in roots] == [
        ("tokenbus-gateway", "POST /v1/chat/completions")
    ]
    orphans = [
        (s.service, s.name) for s in spans if s.parent_span_id and s.parent_span_id not in ids
    ]
    assert not orphans

    by_name = {(s.service, s.name): s for s in spans}
    consume = by_name[("tokenbus-generator", "generator process")]
    assert consume.parent_span_id == roots[0].span_id  # the publish carried the traceparent
    call = by_name[("tokenbus-generator", f"chat {MODEL}")]
    assert call.parent_span_id == consume.span_id
    assert call.attributes["gen_ai.request.model"]
    assert call.attributes["gen_ai.response.model"]
    assert call.attributes["gen_ai.provider.name"] == "openai-compatible"
    assert call.attributes["gen_ai.usage.input_tokens"] > 0
    assert call.attributes["gen_ai.usage.output_tokens"] > 0
    assert call.attributes["gen_ai.response.finish_reasons"] in (["stop"], ["length"])
    usage = by_name[("tokenbus-usage", "usage process")]
    assert usage.parent_span_id == consume.span_id  # the usage event carried it on

    # Log lines written inside those spans carry the same trace id.
    trace_id = roots[0].trace_id
    for service in ("gateway", "generator"):
        lines = [orjson.loads(line) for line in stack.log(service).splitlines()]
        assert any(
            line.get("trace_id") == trace_id and line.get("correlation_id") == request_id
            for line in lines
        ), service
