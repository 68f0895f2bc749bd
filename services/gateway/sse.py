"""Response headers every SSE stream of the gateway carries."""

from __future__ import annotations

__all__ = ["SSE_HEADERS"]

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx (and ingress-nginx) buffer responses unless told not to.
    "X-Accel-Buffering": "no",
}
