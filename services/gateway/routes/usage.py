"""GET /v1/usage: tokens and cost, per day, model and purpose."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from contracts import utc_now
from services.gateway.http.auth import Authenticated
from services.gateway.http.errors import ApiError
from services.gateway.state import State
from services.gateway.usage import GROUPINGS, usage_totals

router = APIRouter()


def _day(value: str | None, name: str) -> str:
    if value is None:
        return utc_now().date().isoformat()
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ApiError(400, f"{name} must be a date, YYYY-MM-DD.", "invalid_value", name) from None


@router.get("/v1/usage")
async def usage(
    state: State,
    caller: Authenticated,
    date_from: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    date_to: Annotated[str | None, Query(alias="to", max_length=10)] = None,
    group_by: Annotated[str, Query(max_length=64)] = "model",
) -> dict[str, Any]:
    first, last = _day(date_from, "from"), _day(date_to, "to")
    if first > last:
        raise ApiError(400, "from is after to.", "invalid_value", "from")
    groups = tuple(g for g in group_by.split(",") if g)
    if not groups or any(g not in GROUPINGS for g in groups) or len(set(groups)) < len(groups):
        raise ApiError(
            400,
            f"group_by takes a comma-separated subset of {', '.join(GROUPINGS)}.",
            "invalid_value",
            "group_by",
        )
    rows, total = await usage_totals(state.bus, caller.tenant_id, first, last, groups)
    return {
        "object": "usage",
        "from": first,
        "to": last,
        "group_by": list(groups),
        "data": rows,
        "total": total,
    }
