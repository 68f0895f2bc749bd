"""One embedding request: check it against the model, embed, meter, answer."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping

import numpy as np

from contracts import EmbeddingFailure, EmbeddingReply, EmbeddingRequest, TurnUsage
from contracts.subjects import EMBEDDING_USAGE_GATEWAY
from services.embedder.errors import EmbeddingError
from services.embedder.metrics import EMBEDDED_INPUTS, EMBEDDING_FAILURES, EMBEDDING_SECONDS
from services.embedder.ports import EmbeddingModel, UsageSink
from services.runtime.catalog import Catalog, ModelEntry

__all__ = ["answer", "encode_vector", "usage_event_id"]


def encode_vector(vector: list[float]) -> str:
    """base64 of little-endian float32, as OpenAI's `encoding_format: base64` sends it."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def usage_event_id(turn_id: str, part: int) -> str:
    # The same batch asked again meters once: the usage service dedupes on this id.
    return "emb" + hashlib.sha256(f"{turn_id}.{part}".encode()).hexdigest()[:40]


def _param(request: EmbeddingRequest, index: int) -> str:
    return "input" if len(request.inputs) == 1 else f"input.{index}"


def _check(request: EmbeddingRequest, entry: ModelEntry) -> None:
    wanted, native = request.dimensions, entry.dimensions
    if wanted is not None and wanted != native:
        if not entry.shortens:
            raise EmbeddingError(
                "invalid_value",
                f"dimensions {wanted}: this model gives {native}-dimension vectors only.",
                "dimensions",
            )
        if native is not None and wanted > native:
            raise EmbeddingError(
                "invalid_value",
                f"dimensions {wanted}: at most {native} for this model.",
                "dimensions",
            )
    for index, text in enumerate(request.inputs):
        if not text:
            raise EmbeddingError("invalid_value", "An input is empty.", _param(request, index))


async def _counted(request: EmbeddingRequest, entry: ModelEntry, model: EmbeddingModel) -> None:
    counts = await model.count_tokens(list(request.inputs))
    if counts is None:
        return
    for index, count in enumerate(counts):
        if count > entry.context_window:
            raise EmbeddingError(
                "context_length_exceeded",
                f"This input is {count} tokens, over this model's limit of "
                f"{entry.context_window} tokens per input.",
                _param(request, index),
            )


async def answer(
    request: EmbeddingRequest,
    catalog: Catalog,
    models: Mapping[str, EmbeddingModel],
    usage: UsageSink,
) -> EmbeddingReply:
    """The vectors, or the failure with its code; the usage is on the bus before the reply."""
    started = time.perf_counter()
    try:
        entry = catalog.get(request.model)
        model = models.get(request.model)
        if entry is None or entry.role != "embedding" or model is None:
            raise EmbeddingError(
                "invalid_value", f"'{request.model}' is not an embedding model here.", "model"
            )
        _check(request, entry)
        await _counted(request, entry, model)
        embedded = await model.embed(list(request.inputs), request.dimensions)
    except EmbeddingError as exc:
        EMBEDDING_FAILURES.labels(exc.code).inc()
        return EmbeddingReply(
            correlation_id=request.correlation_id,
            failure=EmbeddingFailure(code=exc.code, message=exc.message, param=exc.param),
        )
    if request.metered:
        await usage.publish(
            TurnUsage(
                event_id=usage_event_id(request.turn_id, request.part),
                correlation_id=request.correlation_id,
                conversation_id=EMBEDDING_USAGE_GATEWAY,
                turn_id=request.turn_id,
                seq=1,
                tenant_id=request.tenant_id,
                user_id=request.user_id,
                key_id=request.key_id,
                model=request.model,
                provider_model=embedded.provider_model,
                input_tokens=embedded.input_tokens,
                output_tokens=0,
                purpose="embedding",
            )
        )
    EMBEDDED_INPUTS.labels(request.model).inc(len(request.inputs))
    EMBEDDING_SECONDS.labels(request.model).observe(time.perf_counter() - started)
    return EmbeddingReply(
        correlation_id=request.correlation_id,
        vectors=tuple(encode_vector(v) for v in embedded.vectors),
        dimensions=len(embedded.vectors[0]) if embedded.vectors else 0,
        input_tokens=embedded.input_tokens,
        provider_model=embedded.provider_model,
    )
