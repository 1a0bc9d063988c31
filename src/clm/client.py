"""The Python API: the same operations as the HTTP API and the CLI, for notebooks and jobs.

import clm

shop = clm.connect().workspace("shop")          # the embedded database by default
shop.import_transactions(orders, customer="cust", date="day", amount="total")
shop.send([{"type": "track", "userId": "u1", "event": "Signed Up"}])
shop.find_customer("user_id", "u1")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clm.config import get_settings
from clm.ingest import IngestResult, ingest
from clm.ingest.importer import ImportReport, import_events, import_transactions
from clm.store import customers as repo
from clm.store import workspaces as ws
from clm.store.engine import Database
from clm.store.schemas import CustomerDetail, CustomerPublic, EventPublic, Page


@dataclass(frozen=True)
class NewWorkspace:
    """A created workspace and its first keys (the only time they are shown)."""

    slug: str
    id: int
    write_key: str
    secret_key: str


class Workspace:
    """One workspace's data: send and import events, look customers up."""

    def __init__(self, db: Database, workspace_id: int, slug: str) -> None:
        self.db, self.id, self.slug = db, workspace_id, slug

    def __repr__(self) -> str:
        return f"Workspace({self.slug!r}, id={self.id})"

    def send(self, messages: list[dict[str, Any]]) -> IngestResult:
        """Store Segment messages (validated, deduplicated, identities resolved)."""
        return ingest(self.db, self.id, messages)

    def import_events(self, source: Any, **options: Any) -> ImportReport:
        """Import Segment messages from a file or a pandas/polars DataFrame."""
        return import_events(self.db, self.id, source, **options)

    def import_transactions(self, source: Any, **options: Any) -> ImportReport:
        """Import a transaction log (customer, date, amount) as purchase events."""
        return import_transactions(self.db, self.id, source, **options)

    def customer(self, customer_id: int) -> CustomerDetail:
        with self.db.session() as session:
            return repo.get_customer(session, self.id, customer_id)

    def find_customer(self, kind: str, value: str) -> CustomerDetail:
        """The customer named by ``user_id``, ``anonymous_id``, ``email`` or ``ext:<type>``."""
        with self.db.session() as session:
            return repo.find_customer(session, self.id, kind, value)

    def customers(self, *, after: int | None = None, limit: int = 100) -> Page[CustomerPublic]:
        with self.db.session() as session:
            return repo.list_customers(session, self.id, after=after, limit=limit)

    def events(
        self, where: repo.EventFilter | None = None, *, after: int | None = None, limit: int = 100
    ) -> Page[EventPublic]:
        with self.db.session() as session:
            return repo.list_events(session, self.id, where, after=after, limit=limit)

    def timeline(self, customer_id: int, *, limit: int = 100) -> list[EventPublic]:
        with self.db.session() as session:
            return repo.timeline(session, self.id, customer_id, limit=limit)


class Clm:
    """A handle on one CLM database."""

    def __init__(self, database_url: str | None = None) -> None:
        self.db = Database.open(database_url or get_settings().effective_database_url)

    def create_workspace(self, slug: str, name: str | None = None) -> NewWorkspace:
        with self.db.transaction() as session:
            workspace = ws.create_workspace(session, slug, name)
            write = ws.issue_key(session, "write", workspace.id, "default write key")
            secret = ws.issue_key(session, "secret", workspace.id, "default secret key")
        return NewWorkspace(workspace.slug, workspace.id, write.key, secret.key)

    def workspace(self, ref: str | int) -> Workspace:
        with self.db.session() as session:
            found = ws.get_workspace(session, ref)
        return Workspace(self.db, found.id, found.slug)

    def close(self) -> None:
        self.db.dispose()


def connect(database_url: str | None = None) -> Clm:
    """Open a CLM database: ``CLM_DATABASE_URL``, else the embedded SQLite file."""
    return Clm(database_url)
