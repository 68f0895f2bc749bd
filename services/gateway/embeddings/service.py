"""Checking an embeddings request, admitting it, asking the embedder, shaping the answer."""

from __future__ import annotations

import asyncio
import base64
import math
from array import array
from collections.abc import Sequence

import nats.errors

from contracts import EmbeddingReply, EmbeddingRequest, new_id, utc_now
from contracts.subjects import EMBEDDING_REQUEST_SUBJECT
from services.gateway.caller import Caller
from services.gateway.catalog import embedding_model
from services.gateway.embeddings.schema import (
    MAX_INPUTS,
    EmbeddingData,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbeddingsUsage,
)
from services.gateway.http.errors import ApiError
from services.gateway.state import GatewayState
from services.runtime.catalog import ModelEntry

__all__ = ["create_embeddings", "decode_vector", "inputs_of"]

# One bus message each way stays well under NATS's 1 MB max_payload: a batch holds
# at most this much text, and at most this many floats in its answer (base64: 5.4 B each).
_BATCH_TEXT_BYTES = 256 * 1024
_BATCH_FLOATS = 120_000
_FAILURE_STATUS = {
    "invalid_value": 400,
    "invalid_request": 400,
    "context_length_exceeded": 400,
    "rate_limited": 429,
    "upstream_unavailable": 503,
}


def inputs_of(body: EmbeddingsRequest) -> list[str]:
    """The texts to embed, or 400 naming the field at fault."""
    if isinstance(body.input, str):
        texts = [body.input]
    elif all(isinstance(item, str) for item in body.input):
        texts = [str(item) for item in body.input]
    else:
        raise ApiError(
            400,
            "input: token arrays are not taken here; send the text.",
            "unsupported_parameter",
            "input",
        )
    if not texts:
        raise ApiError(400, "input: the list is empty.", "invalid_value", "input")
    if len(texts) > MAX_INPUTS:
        raise ApiError(
            400,
            f"input: {len(texts)} items, over the limit of {MAX_INPUTS} per request.",
            "invalid_value",
            "input",
        )
    for index, text in enumerate(texts):
        if not text.strip():
            where = "input" if isinstance(body.input, str) else f"input.{index}"
            raise ApiError(400, f"{where}: the text is empty.", "invalid_value", where)
    return texts


def _check_dimensions(entry: ModelEntry, dimensions: int | None) -> None:
    native = entry.dimensions
    if dimensions is None or dimensions == native:
        return
    if not entry.shortens:
        message = f"dimensions: this model gives {native}-dimension vectors only."
    elif native is not None and dimensions > native:
        message = f"dimensions: at most {native} for this model."
    else:
        return
    raise ApiError(400, message, "invalid_value", "dimensions")


def _batches(texts: list[str], floats_each: int) -> list[tuple[int, list[str]]]:
    """(offset, texts) runs small enough for one bus message each way."""
    most = max(1, _BATCH_FLOATS // max(1, floats_each))
    batches: list[tuple[int, list[str]]] = []
    start, size = 0, 0
    current: list[str] = []
    for index, text in enumerate(texts):
        length = len(text.encode())
        if current and (len(current) >= most or size + length > _BATCH_TEXT_BYTES):
            batches.append((start, current))
            start, size = index, 0
            current = []
        current.append(text)
        size += length
    batches.append((start, current))
    return batches


def decode_vector(encoded: str) -> list[float]:
    floats = array("f")
    floats.frombytes(base64.b64decode(encoded))
    return floats.tolist()


def _estimate(texts: Sequence[str]) -> int:
    # A high guess, as for prompts (1 token per 3 bytes, plus [CLS]/[SEP]): the exact
    # count is metered from the embedder's usage event.
    return sum(2 + math.ceil(len(t.encode()) / 3) for t in texts)


async def _ask(state: GatewayState, request: EmbeddingRequest, waits: int) -> EmbeddingReply:
    try:
        msg = await state.bus.nc.request(
            EMBEDDING_REQUEST_SUBJECT,
            request.model_dump_json().encode(),
            # The batches of one request may queue behind each other on one embedder.
            timeout=state.settings.embedding_timeout_s * waits,
        )
    except nats.errors.NoRespondersError:
        raise ApiError(
            503,
            "No embedder is running to serve this model; try again shortly.",
            "embedder_unavailable",
            headers={"Retry-After": "1"},
        ) from None
    except nats.errors.TimeoutError:
        raise ApiError(504, "The embedder did not answer in time.", "timeout") from None
    return EmbeddingReply.model_validate_json(msg.data)


async def create_embeddings(
    state: GatewayState, caller: Caller, body: EmbeddingsRequest, correlation_id: str
) -> tuple[EmbeddingsResponse, dict[str, str]]:
    entry = embedding_model(state.catalog, body.model)
    texts = inputs_of(body)
    _check_dimensions(entry, body.dimensions)
    turn_id = new_id("emb")
    day = utc_now().date().isoformat()
    headers, reserved = await state.admission.admit_tokens(caller, entry, turn_id, _estimate(texts))
    floats_each = body.dimensions or entry.dimensions or 3072
    requests = [
        EmbeddingRequest(
            correlation_id=correlation_id,
            turn_id=turn_id,
            part=part,
            tenant_id=caller.tenant_id,
            user_id=caller.user_id,
            key_id=caller.key_id,
            model=entry.name,
            inputs=tuple(batch),
            dimensions=body.dimensions,
        )
        for part, (_, batch) in enumerate(_batches(texts, floats_each))
    ]
    try:
        replies = await asyncio.gather(*(_ask(state, r, len(requests)) for r in requests))
    except BaseException:
        await state.admission.release_tokens(turn_id, day, reserved)
        raise
    failed = next((r.failure for r in replies if r.failure is not None), None)
    if failed is not None:
        if not any(r.failure is None for r in replies):
            await state.admission.release_tokens(turn_id, day, reserved)
        raise ApiError(
            _FAILURE_STATUS.get(failed.code, 502), failed.message, failed.code, failed.param
        )
    vectors = [v for reply in replies for v in reply.vectors]
    data = [
        EmbeddingData(
            index=index,
            embedding=vector if body.encoding_format == "base64" else decode_vector(vector),
        )
        for index, vector in enumerate(vectors)
    ]
    tokens = sum(r.input_tokens for r in replies)
    usage = EmbeddingsUsage(prompt_tokens=tokens, total_tokens=tokens)
    return EmbeddingsResponse(data=data, model=entry.name, usage=usage), headers
