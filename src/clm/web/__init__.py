"""The dashboard: static pages over the management API, served beside it.

People sign in with email and password (``/api/v1/auth/login`` sets an HttpOnly session
cookie; changes carry the CSRF token); operators may instead paste a key, kept for the tab only.
``app.js``'s ``authHeaders`` is the one place that decides how requests authenticate. Nothing
here is computed in the page that the API does not also answer.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from clm.api.app import create_app as create_api
from clm.store.engine import Database

STATIC = Path(__file__).parent / "static"

__all__ = ["create_app"]


def create_app(db: Database | None = None) -> FastAPI:
    """The API plus the dashboard at ``/``."""
    app = create_api(db)
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="dashboard")
    return app
