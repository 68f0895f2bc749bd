"""The job request body and the job record kept in the TOKENBUS_JOBS bucket."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, UrlConstraints

from contracts import ChatRequest, Token
from services.gateway.openai.schema import ChatCompletionRequest

__all__ = ["JOBS_ROUTE", "JobRecord", "NewJob", "WebhookStatus"]

# The routing token jobs are published under: no gateway replica relays it
# live, and the webhook consumer filters on it.
JOBS_ROUTE: Final = "jobs"

WebhookStatus = Literal["none", "pending", "delivered", "failed"]


class NewJob(ChatCompletionRequest):
    """POST /v1/jobs: a chat completion request plus where to report the result."""

    webhook_url: Annotated[AnyHttpUrl, UrlConstraints(max_length=2048)] | None = None


class JobRecord(BaseModel):
    """What the bus does not already know about a job; its status comes from the stream."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: Token
    tenant_id: Token = "default"
    user_id: Token = "default"
    created_at: datetime
    model: str
    conversation_id: Token
    turn_id: Token
    correlation_id: Token
    deadline_at: datetime | None = None
    webhook_url: str | None = None
    webhook_status: WebhookStatus = "none"
    webhook_attempts: int = Field(default=0, ge=0)

    @classmethod
    def of(cls, request: ChatRequest, webhook_url: str | None) -> JobRecord:
        return cls(
            id=request.turn_id,
            tenant_id=request.tenant_id,
            user_id=request.user_id,
            created_at=request.occurred_at,
            model=request.model,
            conversation_id=request.conversation_id,
            turn_id=request.turn_id,
            correlation_id=request.correlation_id,
            deadline_at=request.deadline_at,
            webhook_url=webhook_url,
            webhook_status="none" if webhook_url is None else "pending",
        )
