"""The dashboard: static pages over the management API, served beside it.

The page asks for a workspace secret key once, keeps it in the browser's local storage, and
calls ``/api/v1`` with it; the server holds no session. Nothing here is computed in the page
that the API does not also answer.
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
