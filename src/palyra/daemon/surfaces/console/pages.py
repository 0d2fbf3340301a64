"""The web console's pages: static files shipped in the package, served with a strict CSP.

Nothing is built at install time and nothing comes from another origin: the pages are plain
HTML, one stylesheet and small ES modules under ``static/``, read once when the app is made.
The pages hold no data and no secret (every figure comes from ``/console/v1`` after sign-in),
so they are open paths; only files that ship in ``static/`` can be named, so a path cannot
climb out of it.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from palyra.daemon.security.policy import CONSOLE_STATIC_PREFIX
from palyra.model import FailureClass, PalyraError

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

# No inline script or style, nothing from another origin, never framed. The console opens the
# OpenAI sign-in in a popup that must keep its opener to post back, hence "allow-popups".
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def page_headers() -> dict[str, str]:
    return {
        "content-security-policy": PAGE_CSP,
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "cross-origin-opener-policy": "same-origin-allow-popups",
        "cross-origin-resource-policy": "same-origin",
        "permissions-policy": "camera=(), microphone=(), geolocation=()",
        # Revalidated on every load, so an upgraded daemon serves its new pages at once.
        "cache-control": "no-cache",
    }


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    found: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            found.update(_walk(entry, name + "/"))
        elif any(entry.name.endswith(ext) for ext in CONTENT_TYPES):
            found[name] = entry
    return found


def load_static() -> dict[str, tuple[bytes, str]]:
    """Every shipped file by its path under ``static/``: (bytes, content type)."""
    folder = resources.files("palyra.daemon.surfaces.console") / "static"
    files: dict[str, tuple[bytes, str]] = {}
    for name, entry in _walk(folder).items():
        kind = next(t for ext, t in CONTENT_TYPES.items() if name.endswith(ext))
        files[name] = (entry.read_bytes(), kind)
    return files


def mount_pages(app: FastAPI) -> None:
    """``/console`` (the console), ``/docs`` (the API reference) and ``/console/static/*``."""
    files = load_static()

    def serve(name: str) -> Response:
        found = files.get(name)
        if found is None:
            raise PalyraError.of(
                FailureClass.NOT_FOUND,
                f"the console has no file {name!r}; open the console at /console",
            )
        body, kind = found
        return Response(body, media_type=kind, headers=page_headers())

    async def console_page(request: Request) -> Response:
        return serve("index.html")

    async def docs_page(request: Request) -> Response:
        return serve("docs.html")

    async def static_file(request: Request, name: str) -> Response:
        return serve(name)

    for path in ("/console", "/console/"):
        app.add_api_route(
            path,
            console_page,
            methods=["GET"],
            response_class=HTMLResponse,
            include_in_schema=False,
        )
    app.add_api_route(
        "/docs", docs_page, methods=["GET"], response_class=HTMLResponse, include_in_schema=False
    )
    app.add_api_route(
        CONSOLE_STATIC_PREFIX + "{name:path}",
        static_file,
        methods=["GET"],
        include_in_schema=False,
    )
