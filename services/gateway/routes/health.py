"""Liveness and readiness for load balancers and Kubernetes probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.gateway.state import GatewayState, State

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


# A hung server keeps the TCP connection open: only a round trip shows it is gone.
_BUS_PROBE_S = 1


async def _bus_answers(state: GatewayState) -> bool:
    if not state.bus.connected:
        return False
    try:
        await state.bus.nc.flush(timeout=_BUS_PROBE_S)
    except Exception:
        return False
    return True


@router.get("/readyz")
async def readyz(state: State) -> JSONResponse:
    bus_answers = await _bus_answers(state)
    ready = bus_answers and state.relay.live and not state.drain.started
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "bus_connected": bus_answers,
            "draining": state.drain.started,
        },
        status_code=200 if ready else 503,
    )
