"""Who is calling: `Authorization: Bearer <key>` (or `x-api-key: <key>`) resolved to a tenant,
a user and limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.gateway.caller import Caller
from services.gateway.http.errors import ApiError, bus_unavailable
from services.gateway.state import State

__all__ = ["Authenticated", "Caller", "authenticate"]

# Generous for any real key, small enough that nothing big is ever hashed or echoed.
_MAX_HEADER_CHARS = 256
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tokenbus"'}


def _unauthorized(message: str, code: str) -> ApiError:
    return ApiError(401, message, code=code, headers=_CHALLENGE)


def _bearer(request: Request) -> str:
    # Anthropic's SDK sends its key as x-api-key: taken on every route, like Bearer.
    anthropic_key = request.headers.get("x-api-key")
    if anthropic_key is not None and "authorization" not in request.headers:
        if not anthropic_key.strip() or len(anthropic_key) > _MAX_HEADER_CHARS:
            raise _unauthorized("Malformed x-api-key header.", "invalid_api_key")
        return anthropic_key.strip()
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized(
            "No API key provided. Send it as 'Authorization: Bearer <key>'.", "missing_api_key"
        )
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip() or len(header) > _MAX_HEADER_CHARS:
        raise _unauthorized(
            "Malformed Authorization header. Send 'Authorization: Bearer <key>'.",
            "invalid_api_key",
        )
    return key.strip()


async def authenticate(request: Request, state: State) -> Caller:
    if not state.bus.connected:  # every route behind a key needs the bus: say so at once
        raise bus_unavailable()
    # Never echo the key back, not even in part: the answer must not confirm guesses.
    record = await state.keys.find(_bearer(request))
    if record is None or record.revoked_at is not None:
        raise _unauthorized("Invalid or revoked API key.", "invalid_api_key")
    caller = Caller(
        tenant_id=record.tenant_id,
        user_id=record.user_id,
        key_id=record.key_id,
        key_limits=record.limits,
    )
    # For the rate-limit headers every response of this key carries.
    request.state.caller = caller
    return caller


Authenticated = Annotated[Caller, Depends(authenticate)]
