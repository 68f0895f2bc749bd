"""Liveness and readiness for load balancers and Kubernetes probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.gateway.state import State

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    ready = state.bus.connected and state.relay.live and not state.drain.started
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "bus_connected": state.bus.connected,
            "draining": state.drain.started,
        },
        status_code=200 if ready else 503,
    )
