"""The chat page: index.html at `/`, its assets under `/web/` (public files, no API key)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from services.gateway.http.errors import ApiError

__all__ = ["router"]

_WEB_DIR = Path(__file__).resolve().parent.parent / "web"
# The page loads nothing from elsewhere and runs no inline code: model output can
# never become markup, and this policy would stop it if a bug ever let it.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(_WEB_DIR / "index.html", headers=_PAGE_HEADERS)


@router.get("/web/{name}")
async def asset(name: str) -> FileResponse:
    # Only the files shipped in web/ itself: a name is never joined into a path unchecked.
    shipped = {p.name: p for p in _WEB_DIR.iterdir() if p.is_file()}
    if name not in shipped:
        raise ApiError(404, "No such file.", "not_found")
    return FileResponse(shipped[name], headers=_PAGE_HEADERS)
