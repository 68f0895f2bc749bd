"""The provider call as the rest of the system sees it: one GenAI span and its metrics.

Wraps the whole provider chain (response cache, retries, breakers, failover), so the
span and the timings cover what the turn waited for; a cache hit is counted as one
and kept out of the latency histograms. The span follows OpenTelemetry's GenAI
semantic conventions and carries counts and names only: never prompt or output text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from contracts import ChatRequest
from services.generator.errors import ProviderError
from services.generator.metrics import (
    ACTIVE_STREAMS,
    CACHE_HITS,
    COMPLETIONS,
    ERRORS,
    TIME_PER_OUTPUT_TOKEN,
    TIME_TO_FIRST_TOKEN,
    TOKENS,
)
from services.generator.ports import ModelProvider, StreamEnd, TextChunk
from services.runtime.catalog import Catalog
from services.runtime.metrics import TokenTimer

__all__ = ["ObservedProvider"]

log = logging.getLogger("tokenbus.generator")

Item = TextChunk | StreamEnd


class ObservedProvider:
    def __init__(
        self,
        inner: ModelProvider,
        catalog: Catalog,
        tracer: trace.Tracer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._catalog = catalog
        self._tracer = tracer or trace.get_tracer("tokenbus.generator")
        self._clock = clock

    def stream(self, request: ChatRequest) -> AsyncIterator[Item]:
        return self._stream(request)

    async def _stream(self, request: ChatRequest) -> AsyncIterator[Item]:
        entry = self._catalog.get(request.model)
        model = request.model if entry is not None else "unknown"
        # Started, not made current: the turn's events are published while this
        # generator is suspended, and belong to the turn's span, not the call's.
        span = self._tracer.start_span(
            f"chat {model}", kind=SpanKind.CLIENT, attributes=self._request_attributes(request)
        )
        timer = TokenTimer(self._clock)
        ttft: float | None = None
        ACTIVE_STREAMS.inc()
        try:
            async for item in self._inner.stream(request):
                if isinstance(item, TextChunk):
                    if (first := timer.token()) is not None:
                        ttft = first
                        span.set_attribute("gen_ai.response.time_to_first_chunk", first)
                else:
                    timer.finish()
                    self._record_end(model, item, timer, ttft, span)
                yield item
        except ProviderError as exc:
            ERRORS.labels(model, exc.code).inc()
            span.set_attribute("error.type", exc.code)
            span.set_status(StatusCode.ERROR, exc.code)
            raise
        except GeneratorExit:
            # The turn stopped reading: cancelled by the client, or its deadline.
            span.set_attribute("tokenbus.stream_abandoned", True)
            raise
        except Exception as exc:
            ERRORS.labels(model, "upstream_error").inc()
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            ACTIVE_STREAMS.dec()
            span.end()

    def _request_attributes(self, request: ChatRequest) -> dict[str, str | int | float]:
        entry = self._catalog.get(request.model)
        attributes: dict[str, str | int | float] = {
            "gen_ai.operation.name": "chat",
            "tokenbus.model": request.model,
            "gen_ai.conversation.id": request.conversation_id,
        }
        if entry is not None:
            # gen_ai.system is the older name of gen_ai.provider.name; backends read either.
            attributes["gen_ai.provider.name"] = entry.provider
            attributes["gen_ai.system"] = entry.provider
            attributes["gen_ai.request.model"] = entry.upstream_model
        params = request.params
        if params.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = params.max_tokens
        if params.temperature is not None:
            attributes["gen_ai.request.temperature"] = params.temperature
        if params.top_p is not None:
            attributes["gen_ai.request.top_p"] = params.top_p
        return attributes

    @staticmethod
    def _record_end(
        model: str, end: StreamEnd, timer: TokenTimer, ttft: float | None, span: Span
    ) -> None:
        served = end.served_by or model
        # One line per model call: counts and names, never the prompt or the answer.
        log.info(
            "model call finished",
            extra={
                "model": model,
                "served_by": served,
                "finish_reason": end.finish_reason,
                "input_tokens": end.input_tokens,
                "output_tokens": end.output_tokens,
                "from_cache": end.from_cache,
            },
        )
        COMPLETIONS.labels(served, end.finish_reason).inc()
        span.set_attribute("gen_ai.response.model", end.provider_model)
        span.set_attribute("gen_ai.response.finish_reasons", [end.finish_reason])
        span.set_attribute("tokenbus.served_by", served)
        if end.input_tokens is not None:
            TOKENS.labels(served, "input").inc(end.input_tokens)
            span.set_attribute("gen_ai.usage.input_tokens", end.input_tokens)
        if end.output_tokens is not None:
            TOKENS.labels(served, "output").inc(end.output_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", end.output_tokens)
        if end.cached_input_tokens:
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", end.cached_input_tokens)
        if end.from_cache:
            # A replay from the response cache: its pace says nothing about the model's.
            CACHE_HITS.labels(model).inc()
            span.set_attribute("tokenbus.cache_hit", True)
            return
        if ttft is not None:
            TIME_TO_FIRST_TOKEN.labels(model).observe(ttft)
        if (gap := timer.per_output_token(end.output_tokens)) is not None:
            TIME_PER_OUTPUT_TOKEN.labels(served).observe(gap)
