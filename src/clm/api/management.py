"""The management API under ``/api/v1``: workspaces and keys, customers, the event log.

Bearer auth: an admin key creates workspaces; a workspace secret key reads and manages its own
workspace and nothing else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from clm.api.deps import AdminKey, DatabaseDep, WorkspaceKey, workspace_id
from clm.api.routing import ClmRoute
from clm.store import customers as repo
from clm.store import workspaces as ws
from clm.store.schemas import (
    ApiKeyPublic,
    CustomerDetail,
    CustomerPublic,
    EventPublic,
    Page,
    WorkspacePublic,
    WorkspaceStats,
)
from clm.store.storable import RowId

router = APIRouter(prefix="/api/v1", tags=["management"], route_class=ClmRoute)


class WorkspaceCreate(BaseModel):
    slug: Annotated[str, Field(min_length=1, max_length=63)]
    name: Annotated[str | None, Field(max_length=200)] = None


class WorkspaceCreated(BaseModel):
    """The new workspace and its first keys: the only time the keys are shown."""

    workspace: WorkspacePublic
    write_key: str
    secret_key: str


class KeyCreate(BaseModel):
    kind: Literal["write", "secret"]
    name: Annotated[str, Field(max_length=200)] = ""


class KeyCreated(BaseModel):
    id: int
    kind: str
    key: str


@router.post("/workspaces", status_code=201)
def create_workspace(body: WorkspaceCreate, db: DatabaseDep, _: AdminKey) -> WorkspaceCreated:
    with db.transaction() as session:
        workspace = ws.create_workspace(session, body.slug, body.name)
        write = ws.issue_key(session, "write", workspace.id, "default write key")
        secret = ws.issue_key(session, "secret", workspace.id, "default secret key")
        public = WorkspacePublic.model_validate(workspace)
    return WorkspaceCreated(workspace=public, write_key=write.key, secret_key=secret.key)


@router.get("/workspaces")
def list_workspaces(db: DatabaseDep, _: AdminKey) -> list[WorkspacePublic]:
    with db.session() as session:
        return [WorkspacePublic.model_validate(w) for w in ws.list_workspaces(session)]


@router.get("/workspace")
def current_workspace(db: DatabaseDep, key: WorkspaceKey) -> WorkspacePublic:
    with db.session() as session:
        return WorkspacePublic.model_validate(ws.get_workspace(session, workspace_id(key)))


@router.get("/workspace/stats")
def workspace_stats(db: DatabaseDep, key: WorkspaceKey) -> WorkspaceStats:
    """Customers, identified share, events by type and channel, purchases and revenue."""
    with db.session() as session:
        return repo.workspace_stats(session, workspace_id(key))


@router.get("/keys")
def list_keys(db: DatabaseDep, key: WorkspaceKey) -> list[ApiKeyPublic]:
    with db.session() as session:
        return [ApiKeyPublic.model_validate(k) for k in ws.list_keys(session, workspace_id(key))]


@router.post("/keys", status_code=201)
def create_key(body: KeyCreate, db: DatabaseDep, key: WorkspaceKey) -> KeyCreated:
    with db.transaction() as session:
        issued = ws.issue_key(session, body.kind, workspace_id(key), body.name)
    return KeyCreated(id=issued.id, kind=issued.kind, key=issued.key)


@router.delete("/keys/{key_id}", status_code=204)
def revoke_key(key_id: RowId, db: DatabaseDep, key: WorkspaceKey) -> None:
    with db.transaction() as session:
        ws.revoke_key(session, key_id, workspace_id(key))


@router.get("/customers")
def list_customers(
    db: DatabaseDep,
    key: WorkspaceKey,
    after: RowId | None = None,
    limit: Annotated[int, Query(ge=1, le=repo.MAX_PAGE)] = 100,
) -> Page[CustomerPublic]:
    with db.session() as session:
        return repo.list_customers(session, workspace_id(key), after=after, limit=limit)


@router.get("/customers/lookup")
def lookup_customer(
    db: DatabaseDep,
    key: WorkspaceKey,
    kind: Annotated[str, Query(pattern=r"^(user_id|anonymous_id|email|ext:.+)$")],
    value: Annotated[str, Query(min_length=1, max_length=512)],
) -> CustomerDetail:
    """The customer an identifier names, e.g. ``?kind=email&value=ann@example.com``."""
    with db.session() as session:
        return repo.find_customer(session, workspace_id(key), kind, value)


@router.get("/customers/{customer_id}")
def get_customer(customer_id: RowId, db: DatabaseDep, key: WorkspaceKey) -> CustomerDetail:
    """A customer with identities and how they were resolved; merged-away ids still work."""
    with db.session() as session:
        return repo.get_customer(session, workspace_id(key), customer_id)


@router.get("/customers/{customer_id}/timeline")
def customer_timeline(
    customer_id: RowId,
    db: DatabaseDep,
    key: WorkspaceKey,
    limit: Annotated[int, Query(ge=1, le=repo.MAX_PAGE)] = 100,
) -> list[EventPublic]:
    """The customer's latest events, newest first, across every merged identity."""
    with db.session() as session:
        return repo.timeline(session, workspace_id(key), customer_id, limit=limit)


@router.get("/events")
def list_events(
    db: DatabaseDep,
    key: WorkspaceKey,
    after: RowId | None = None,
    limit: Annotated[int, Query(ge=1, le=repo.MAX_PAGE)] = 100,
    customer_id: RowId | None = None,
    type: Annotated[str | None, Query(max_length=16)] = None,
    name: Annotated[str | None, Query(max_length=255)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[EventPublic]:
    """The event log in stored order, filtered; page with ``after=next_after``."""
    where = repo.EventFilter(customer_id, type, name, since, until)
    with db.session() as session:
        return repo.list_events(session, workspace_id(key), where, after=after, limit=limit)
