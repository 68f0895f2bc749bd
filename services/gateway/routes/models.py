"""GET /v1/models, as OpenAI serves it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.gateway.auth import Authenticated
from services.gateway.state import State

router = APIRouter()


@router.get("/v1/models")
async def list_models(state: State, _: Authenticated) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": entry.name,
                "object": "model",
                "created": 0,
                "owned_by": entry.provider,
                "context_window": entry.context_window,
                "max_output_tokens": entry.max_output_tokens,
            }
            for entry in state.catalog.chat_models()
        ],
    }
