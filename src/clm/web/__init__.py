"""The web app: a static ES-module single-page app over ``/api/v1``, served beside the API.

Why this shape (see ``src/clm/web/README.md``): no build step, so ``clm serve`` serves the
files as they are in the repo; third-party code (Preact + htm, ECharts, Swagger UI, Redoc)
comes from the npm registry pinned by ``package-lock.json``, installed by ``npm ci
--ignore-scripts`` into ``node_modules`` and served offline under ``/assets/vendor/`` -- only
the files on the allow-list below, never the whole tree.

Every page is a URL of its own (History API); the server answers the app's paths with
``index.html``. Those paths are an explicit list, so the app never shadows ``/api``, ``/v1``,
``/public``, ``/docs`` or anything the API adds later. ``app.js``'s ``authHeaders`` stays the
one place that decides how the page authenticates (session cookie + CSRF, or a pasted key).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from clm.api.app import create_app as create_api
from clm.errors import NotFound
from clm.store.engine import Database
from clm.web.docs import install_docs

STATIC = Path(__file__).parent / "static"
NODE_MODULES = Path(__file__).parent / "node_modules"

# The app's own top-level paths: each answers index.html (and so do paths under it), the
# router in app.js picks the page. Add a page here and in static/routes.js.
APP_PAGES = ("overview", "customers", "segments", "reports", "engagement", "settings")

# The vendored files the pages load, relative to node_modules: nothing else is served.
VENDOR_FILES = frozenset(
    {
        "preact/dist/preact.mjs",
        "preact/hooks/dist/hooks.mjs",
        "htm/dist/htm.mjs",
        "echarts/dist/echarts.esm.min.mjs",
        "swagger-ui-dist/swagger-ui-bundle.js",
        "swagger-ui-dist/swagger-ui.css",
        "redoc/bundles/redoc.standalone.js",
    }
)

# Outside URLs a vendored file would load at run time, and what it is served with instead.
# Redoc's sidebar shows Redocly's logo from its CDN: offline that is a failed request and a
# console error; an empty ``src`` makes Redoc drop the image (its ``onError`` hides it) and
# keep the "API docs by Redocly" credit. tests/web/test_docs_offline.py blocks every request
# off loopback, so a new version with a new outside URL fails there.
VENDOR_REWRITES: dict[str, dict[bytes, bytes]] = {
    "redoc/bundles/redoc.standalone.js": {b'"https://cdn.redoc.ly/redoc/logo-mini.svg"': b'""'},
}

__all__ = ["APP_PAGES", "VENDOR_FILES", "create_app"]


def vendor_file(path: str) -> Path:
    """The installed file behind ``/assets/vendor/<path>``, if it is on the allow-list."""
    if path not in VENDOR_FILES:
        raise NotFound(f"no vendored asset {path!r}")
    file = NODE_MODULES / path
    if not file.is_file():
        raise NotFound(f"{path!r} is not installed: run `npm ci --ignore-scripts` in src/clm/web")
    return file


@cache
def rewritten(path: str) -> bytes:
    """A vendored file with its outside URLs replaced (read once per process)."""
    content = vendor_file(path).read_bytes()
    for outside, local in VENDOR_REWRITES[path].items():
        content = content.replace(outside, local)
    return content


def create_app(db: Database | None = None) -> FastAPI:
    """The API plus the web app at ``/``, its vendored assets and the offline API docs."""
    app = create_api(db)
    install_docs(app)

    @app.get("/assets/vendor/{path:path}", include_in_schema=False)
    def vendor(path: str) -> Response:
        # Pinned by the lockfile, so a long cache is safe; a new version is a new deploy.
        headers = {"Cache-Control": "public, max-age=86400"}
        if path in VENDOR_REWRITES:
            return Response(rewritten(path), media_type="text/javascript", headers=headers)
        return FileResponse(vendor_file(path), headers=headers)

    index = STATIC / "index.html"

    def app_page() -> HTMLResponse:
        return HTMLResponse(
            index.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"}
        )

    for page in APP_PAGES:
        app.add_api_route(f"/{page}", app_page, include_in_schema=False)
        app.add_api_route(f"/{page}/{{rest:path}}", app_page, include_in_schema=False)
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="web")
    return app
