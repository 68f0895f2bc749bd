"""GET /v1/models, as OpenAI serves it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.gateway.state import State

router = APIRouter()


@router.get("/v1/models")
async def list_models(state: State) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "tokenbus"}
            for name in state.settings.models
        ],
    }
