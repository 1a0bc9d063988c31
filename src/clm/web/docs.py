"""``/docs`` (Swagger UI) and ``/redoc``, offline, over an OpenAPI that says how to sign in.

FastAPI's own pages load their scripts from a CDN, so they are blank offline; these load the
vendored copies under ``/assets/vendor/``. The schema gains the security schemes the API
really accepts -- a bearer key on ``/api/v1``, the write key as the Basic user name on ``/v1``
-- so "Try it out" works once a key is entered under "Authorize". The ``/v1`` routes read
their bodies raw (speed, gzip, size limits), so their request bodies are documented here from
the same pydantic models that validate them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from clm.ingest.schemas import Alias, Batch, Group, Identify, Page, Screen, Track

VENDOR = "/assets/vendor"
BEARER = "bearerKey"
WRITE_KEY = "writeKey"
SESSION = "sessionCookie"

# Routes anyone may call: signing in, password reset, the customer-facing public pages.
OPEN_PATHS = frozenset({"/api/v1/auth/login", "/api/v1/auth/reset-request", "/api/v1/auth/reset"})
V1_BODIES: dict[str, type[BaseModel]] = {
    "/v1/identify": Identify,
    "/v1/track": Track,
    "/v1/page": Page,
    "/v1/screen": Screen,
    "/v1/group": Group,
    "/v1/alias": Alias,
    "/v1/batch": Batch,
    "/v1/import": Batch,
}

__all__ = ["install_docs", "openapi_schema"]


def _security(path: str) -> list[dict[str, list[str]]] | None:
    if path in OPEN_PATHS or path.startswith("/public") or path == "/health":
        return []
    if path.startswith("/v1/"):
        return [{WRITE_KEY: []}, {BEARER: []}]
    if path.startswith("/api/"):
        return [{BEARER: []}, {SESSION: []}]
    return None


def _document_v1_bodies(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for path, model in V1_BODIES.items():
        operation = schema["paths"].get(path, {}).get("post")
        if operation is None:
            continue
        body = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components[model.__name__] = body
        ref = {"$ref": f"#/components/schemas/{model.__name__}"}
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref}},
        }


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI with security schemes and the ``/v1`` bodies (built once, cached)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    schema.setdefault("components", {})["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "A workspace key: clm_rk_ (read), clm_mk_ (manage), clm_sk_ (secret).",
        },
        WRITE_KEY: {
            "type": "http",
            "scheme": "basic",
            "description": "Segment style: the write key as user name, empty password.",
        },
        SESSION: {"type": "apiKey", "in": "cookie", "name": "clm_session"},
    }
    for path, operations in schema["paths"].items():
        security = _security(path)
        if security is None:
            continue
        for operation in operations.values():
            operation["security"] = security
    _document_v1_bodies(schema)
    app.openapi_schema = schema
    return schema


def install_docs(app: FastAPI) -> None:
    """Replace FastAPI's CDN-backed doc pages with offline ones over the richer schema."""
    app.router.routes = [
        route
        for route in app.router.routes
        if getattr(route, "path", None) not in {"/docs", "/redoc", "/docs/oauth2-redirect"}
    ]
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{VENDOR}/swagger-ui-dist/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui-dist/swagger-ui.css",
            swagger_favicon_url="/favicon.svg",
            swagger_ui_parameters={"persistAuthorization": False},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            redoc_js_url=f"{VENDOR}/redoc/bundles/redoc.standalone.js",
            redoc_favicon_url="/favicon.svg",
            with_google_fonts=False,
        )
