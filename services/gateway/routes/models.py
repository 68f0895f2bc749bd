"""GET /v1/models and GET /v1/models/{id}, as OpenAI serves them."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from services.gateway.catalog import chat_model
from services.gateway.http.auth import Authenticated
from services.gateway.state import State
from services.runtime.catalog import ModelEntry

router = APIRouter()


class Model(BaseModel):
    """OpenAI's model object, with the limits a client needs to size its requests."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str
    context_window: int
    max_output_tokens: int

    @classmethod
    def of(cls, entry: ModelEntry) -> Model:
        return cls(
            id=entry.name,
            owned_by=entry.provider,
            context_window=entry.context_window,
            max_output_tokens=entry.max_output_tokens,
        )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


@router.get("/v1/models")
async def list_models(state: State, _: Authenticated) -> ModelList:
    return ModelList(data=[Model.of(entry) for entry in state.catalog.chat_models()])


@router.get("/v1/models/{model_id}")
async def retrieve_model(model_id: str, state: State, _: Authenticated) -> Model:
    """One model; 404 model_not_found for a name this gateway does not serve."""
    return Model.of(chat_model(state.catalog, model_id))
