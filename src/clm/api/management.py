"""The management API under ``/api/v1``: workspaces and keys, customers, the event log.

An admin key creates workspaces; everything else needs a key or a signed-in person of the
workspace with the permission each route names (see ``clm.accounts.roles``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, Field

from clm.accounts import keys, record
from clm.api.deps import AdminKey, Configurer, DatabaseDep, Reader, workspace_id
from clm.api.routing import ClmRoute, route_permissions
from clm.lifecycle import event_counts
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


class WorkspaceAccess(WorkspacePublic):
    """The workspace the caller opens and what the caller may do in it: the web app shows
    only the actions these permissions allow (the same set every route checks)."""

    role: str | None = None
    key_kind: str | None = None
    permissions: list[str]
    route_permissions: Annotated[
        dict[str, str],
        Field(
            description="``METHOD /path`` -> the permission that route needs, read from the "
            "routes' own dependencies: the web app offers an action when the caller holds "
            "the permission of the route it calls"
        ),
    ]


class KeyCreate(BaseModel):
    """A scoped key: ``write`` sends events, ``read`` reads, ``manage`` reads and changes
    (``secret`` is manage's older name)."""

    kind: Literal["write", "read", "manage", "secret"]
    name: Annotated[str, Field(max_length=200)] = ""
    expires_at: AwareDatetime | None = None


class KeyCreated(BaseModel):
    """The only time the key's plain text is shown."""

    id: int
    kind: str
    key: str
    expires_at: datetime | None = None


@router.post("/workspaces", status_code=201)
def create_workspace(body: WorkspaceCreate, db: DatabaseDep, who: AdminKey) -> WorkspaceCreated:
    with db.transaction() as session:
        workspace = ws.create_workspace(session, body.slug, body.name)
        record(
            session, who, "workspace.create", f"workspace:{workspace.id}",
            after={"slug": workspace.slug, "name": workspace.name}, workspace_id=workspace.id,
        )  # fmt: skip
        write = ws.issue_key(session, "write", workspace.id, "default write key")
        secret = ws.issue_key(session, "secret", workspace.id, "default secret key")
        public = WorkspacePublic.model_validate(workspace)
    return WorkspaceCreated(workspace=public, write_key=write.key, secret_key=secret.key)


@router.get("/workspaces")
def list_workspaces(db: DatabaseDep, _: AdminKey) -> list[WorkspacePublic]:
    with db.session() as session:
        return [WorkspacePublic.model_validate(w) for w in ws.list_workspaces(session)]


@router.get("/workspace")
def current_workspace(request: Request, db: DatabaseDep, key: Reader) -> WorkspaceAccess:
    with db.session() as session:
        workspace = WorkspacePublic.model_validate(ws.get_workspace(session, workspace_id(key)))
    state = request.app.state
    if not hasattr(state, "route_permissions"):  # the routes are fixed once the app serves
        state.route_permissions = route_permissions(request.app.routes)
    return WorkspaceAccess(
        **workspace.model_dump(),
        role=key.role,
        key_kind=key.key_kind,
        permissions=sorted(p.value for p in key.permissions),
        route_permissions=state.route_permissions,
    )


@router.get("/workspace/stats")
def workspace_stats(db: DatabaseDep, key: Reader) -> WorkspaceStats:
    """Customers, identified share, events by type and channel, purchases and revenue (from
    the stored tally and the events since it: exact, without scanning the log)."""
    return event_counts.workspace_stats(db, workspace_id(key))


@router.get("/keys")
def list_keys(db: DatabaseDep, key: Configurer) -> list[ApiKeyPublic]:
    with db.session() as session:
        return [ApiKeyPublic.model_validate(k) for k in ws.list_keys(session, workspace_id(key))]


@router.post("/keys", status_code=201)
def create_key(body: KeyCreate, db: DatabaseDep, key: Configurer) -> KeyCreated:
    with db.transaction() as session:
        issued = keys.issue(session, key, body.kind, body.name, body.expires_at)
    return KeyCreated(id=issued.id, kind=issued.kind, key=issued.key, expires_at=body.expires_at)


@router.delete("/keys/{key_id}", status_code=204)
def revoke_key(key_id: RowId, db: DatabaseDep, key: Configurer) -> None:
    with db.transaction() as session:
        keys.revoke(session, key, key_id)


@router.get("/customers")
def list_customers(
    db: DatabaseDep,
    key: Reader,
    after: RowId | None = None,
    limit: Annotated[int, Query(ge=1, le=repo.MAX_PAGE)] = 100,
) -> Page[CustomerPublic]:
    with db.session() as session:
        return repo.list_customers(session, workspace_id(key), after=after, limit=limit)


@router.get("/customers/lookup")
def lookup_customer(
    db: DatabaseDep,
    key: Reader,
    kind: Annotated[str, Query(pattern=r"^(user_id|anonymous_id|email|ext:.+)$")],
    value: Annotated[str, Query(min_length=1, max_length=512)],
) -> CustomerDetail:
    """The customer an identifier names, e.g. ``?kind=email&value=ann@example.com``."""
    with db.session() as session:
        return repo.find_customer(session, workspace_id(key), kind, value)


@router.get("/customers/{customer_id}")
def get_customer(customer_id: RowId, db: DatabaseDep, key: Reader) -> CustomerDetail:
    """A customer with identities and how they were resolved; merged-away ids still work."""
    with db.session() as session:
        return repo.get_customer(session, workspace_id(key), customer_id)


@router.get("/customers/{customer_id}/timeline")
def customer_timeline(
    customer_id: RowId,
    db: DatabaseDep,
    key: Reader,
    limit: Annotated[int, Query(ge=1, le=repo.MAX_PAGE)] = 100,
) -> list[EventPublic]:
    """The customer's latest events, newest first, across every merged identity."""
    with db.session() as session:
        return repo.timeline(session, workspace_id(key), customer_id, limit=limit)


@router.get("/events")
def list_events(
    db: DatabaseDep,
    key: Reader,
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
