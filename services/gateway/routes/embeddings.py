"""POST /v1/embeddings, as OpenAI serves it."""

from __future__ import annotations

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from contracts import new_id
from services.gateway.embeddings.schema import EmbeddingsRequest, EmbeddingsResponse
from services.gateway.embeddings.service import create_embeddings
from services.gateway.http.auth import Authenticated
from services.gateway.state import State

router = APIRouter()


@router.post("/v1/embeddings", response_model=None, responses={200: {"model": EmbeddingsResponse}})
async def embeddings(
    body: EmbeddingsRequest,
    state: State,
    caller: Authenticated,
    x_request_id: str | None = Header(default=None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
) -> JSONResponse:
    answer, headers = await create_embeddings(state, caller, body, x_request_id or new_id())
    return JSONResponse(answer.model_dump(), headers=headers)
