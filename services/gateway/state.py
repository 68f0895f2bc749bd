"""What the routes get from the composition root."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.gateway.admission.backpressure import QueueMonitor
from services.gateway.admission.gate import Admission
from services.gateway.config import GatewaySettings
from services.gateway.conversations.store import ConversationStore
from services.gateway.http.drain import Drain
from services.gateway.jobs.store import JobStore
from services.gateway.jobs.webhook_policy import WebhookPolicy
from services.gateway.turns.idempotency import IdempotencyKeys
from services.gateway.turns.relay import TurnRelay
from services.runtime.bus import Bus
from services.runtime.catalog import Catalog
from services.runtime.images import ImageStore
from services.runtime.keys import KeyStore

__all__ = ["GatewayState", "State"]


@dataclass(slots=True)
class GatewayState:
    settings: GatewaySettings
    catalog: Catalog
    bus: Bus
    relay: TurnRelay
    conversations: ConversationStore
    idempotency: IdempotencyKeys
    queue: QueueMonitor
    jobs: JobStore
    webhooks: WebhookPolicy
    keys: KeyStore
    admission: Admission
    drain: Drain
    images: ImageStore


async def _state(request: Request) -> GatewayState:
    # async on purpose: FastAPI runs a plain-def dependency in its threadpool,
    # a thread hop on every request.
    state: GatewayState = request.app.state.gateway
    return state


State = Annotated[GatewayState, Depends(_state)]
