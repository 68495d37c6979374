"""The live dashboard: ``GET /`` and its pre-built assets under ``/static``.

The assets are built from ``frontend/`` (uPlot and vanilla JavaScript, bundled by
esbuild) and committed under ``telemetry/server/static/``, so installing RIMP
needs no Node.js and the page loads nothing from elsewhere. The page itself
holds no data, so it is served without a token; it learns here whether the
server wants one, and asks the user for a read token before its first request.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["STATIC_DIR", "routes"]

STATIC_DIR = Path(__file__).with_name("static")

_AUTH_META = '<meta name="rimp-auth" content="">'
# uPlot sets element styles from script; everything else comes from this origin only.
_SECURITY = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_HEADERS = {"Cache-Control": "no-cache", **_SECURITY}


class _Assets(StaticFiles):
    """The page's scripts and styles, with the page's security headers (index.html too)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_SECURITY)
        return response


@cache
def _pages() -> tuple[str, str]:
    """The page as built, without and with the "a token is required" marker."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    if _AUTH_META not in html:
        raise RuntimeError(f"{STATIC_DIR / 'index.html'} lacks {_AUTH_META!r}: rebuild frontend/")
    return html, html.replace(_AUTH_META, '<meta name="rimp-auth" content="required">')


def _tokens_enabled(request: Request) -> bool:
    state = getattr(request.app.state, "rimp", None)
    tokens = getattr(state, "tokens", None)
    return bool(getattr(tokens, "enabled", False))


async def index(request: Request) -> Response:
    """``GET /``: the dashboard page."""
    open_page, token_page = _pages()
    page = token_page if _tokens_enabled(request) else open_page
    return HTMLResponse(page, headers=_HEADERS)


def routes() -> list[BaseRoute]:
    """``/`` (the page) and ``/static`` (its scripts and styles), for the server's route list."""
    return [
        Route("/", index, methods=["GET"], name="dashboard"),
        Mount("/static", app=_Assets(directory=STATIC_DIR), name="static"),
    ]
