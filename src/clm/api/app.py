"""The FastAPI application: thin routers over the services, one error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from clm._runtime import settle_heap
from clm.api.accounts import router as accounts_router
from clm.api.cors import TrackingCors
from clm.api.customer_engagement import router as customer_engagement_router
from clm.api.customer_list import router as customer_list_router
from clm.api.engage import router as engage_router
from clm.api.engage_console import router as engage_console_router
from clm.api.errors import ERROR_RESPONSES, install_error_handlers
from clm.api.health import router as health_router
from clm.api.lifecycle import router as lifecycle_router
from clm.api.management import router as management_router
from clm.api.notes import router as notes_router
from clm.api.overview import router as overview_router
from clm.api.predictions import router as predictions_router
from clm.api.privacy import router as privacy_router
from clm.api.public import router as public_router
from clm.api.reports import router as reports_router
from clm.api.responses import JsonResponse
from clm.api.routing import ClmRoute
from clm.api.segments import router as segments_router
from clm.api.tracking import router as tracking_router
from clm.config import get_settings
from clm.ingest.writer import EventWriter
from clm.ingest.writer_process import RemoteWriter
from clm.privacy.cors import AllowedOrigins
from clm.store.engine import Database


def _event_writer(database: Database) -> EventWriter | RemoteWriter:
    """The writer process ``clm serve`` started, else a writer thread of this app's own."""
    settings = get_settings()
    if settings.ingest_socket and settings.ingest_token:
        token = bytes.fromhex(settings.ingest_token.get_secret_value())
        return RemoteWriter(settings.ingest_socket, token, database.dialect)
    return EventWriter(database)


def create_app(db: Database | None = None) -> FastAPI:
    """The API over ``db`` (by default the configured database, migrated on start)."""
    database = db or Database.open(get_settings().effective_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.writer = _event_writer(database)
        settle_heap()
        yield
        await app.state.writer.aclose()  # every accepted batch is answered first

    app = FastAPI(
        lifespan=lifespan,
        title="CLM",
        summary="Customer lifecycle management: Segment-compatible ingestion and management API",
        version="0.1.0",
        default_response_class=JsonResponse,
        responses=ERROR_RESPONSES,
    )
    app.router.route_class = ClmRoute  # routes added on the app itself parse JSON strictly too
    app.state.db = database
    app.state.cors_origins = AllowedOrigins(database)
    app.add_middleware(TrackingCors, origins=app.state.cors_origins)
    install_error_handlers(app)
    app.include_router(tracking_router)
    app.include_router(management_router)
    app.include_router(lifecycle_router)
    app.include_router(health_router)
    app.include_router(engage_router)
    app.include_router(engage_console_router)
    app.include_router(public_router)
    app.include_router(predictions_router)
    app.include_router(reports_router)
    app.include_router(accounts_router)
    app.include_router(privacy_router)
    app.include_router(notes_router)
    app.include_router(customer_list_router)
    app.include_router(customer_engagement_router)
    app.include_router(overview_router)
    app.include_router(segments_router)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        """Liveness: the process answers and its database is reachable."""
        with database.session() as session:
            session.connection()
        return {"status": "ok", "database": database.dialect}

    return app
