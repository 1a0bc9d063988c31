"""``clm workspace`` and ``clm keys``: set a workspace up and hand out its keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from clm.accounts import record
from clm.cli._common import (
    DatabaseOption,
    FormatOption,
    OutputFormat,
    console,
    friendly_errors,
    open_database,
    print_json,
    print_table,
    workspace_id,
)
from clm.cli.accounts import operator_here
from clm.store import workspaces as ws
from clm.store.schemas import ApiKeyPublic, WorkspacePublic

workspace_app = typer.Typer(help="Create and list workspaces (one per brand or product line).")
keys_app = typer.Typer(help="Issue, list and revoke API keys.")


@workspace_app.command("create")
def create_workspace(
    slug: Annotated[str, typer.Argument(help="Short name used in URLs and --workspace")],
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Create a workspace and print its first write and secret keys (shown only once)."""
    db = open_database(database_url)
    with friendly_errors(), db.transaction() as session:
        workspace = ws.create_workspace(session, slug, name)
        write = ws.issue_key(session, "write", workspace.id, "default write key")
        secret = ws.issue_key(session, "secret", workspace.id, "default secret key")
        public = WorkspacePublic.model_validate(workspace)
        record(
            session, operator_here(workspace.id), "workspace.create", f"workspace:{workspace.id}",
            after={"slug": workspace.slug, "name": workspace.name},
        )  # fmt: skip
    if output is OutputFormat.json:
        print_json({"workspace": public, "write_key": write.key, "secret_key": secret.key})
        return
    console.print(f"Workspace [bold]{public.slug}[/bold] (id {public.id}) created.")
    console.print(f"write key:  {write.key}")
    console.print(f"secret key: {secret.key}")
    console.print("[dim]Keys are stored hashed; this is the only time they are shown.[/dim]")


@workspace_app.command("list")
def list_workspaces(
    database_url: DatabaseOption = None, output: FormatOption = OutputFormat.table
) -> None:
    """List workspaces."""
    db = open_database(database_url)
    with db.session() as session:
        items = [WorkspacePublic.model_validate(w) for w in ws.list_workspaces(session)]
    if output is OutputFormat.json:
        print_json(items)
    else:
        print_table(
            "Workspaces",
            ["id", "slug", "name", "created"],
            [(w.id, w.slug, w.name, w.created_at) for w in items],
        )


@keys_app.command("create")
def create_key(
    kind: Annotated[str, typer.Argument(help="write, read, manage (or secret) or admin")],
    workspace: Annotated[
        str | None, typer.Option("--workspace", "-w", help="Workspace (not for admin keys)")
    ] = None,
    name: Annotated[str, typer.Option(help="A label to tell keys apart")] = "",
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="Refuse the key after this many days")
    ] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Issue a key; it is printed once and stored only as a hash."""
    db = open_database(database_url)
    with friendly_errors():
        ws_id = workspace_id(db, workspace) if workspace else None
        expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
        with db.transaction() as session:
            issued = ws.issue_key(session, kind, ws_id, name, expires)  # type: ignore[arg-type]
            record(
                session, operator_here(ws_id), "key.create", f"key:{issued.id}",
                after={"kind": kind, "name": name, "prefix": issued.key[:12],
                       "expires_at": expires.isoformat() if expires else None},
            )  # fmt: skip
    if output is OutputFormat.json:
        print_json({"id": issued.id, "kind": issued.kind, "key": issued.key})
    else:
        console.print(f"{issued.kind} key {issued.id}: {issued.key}")


@keys_app.command("list")
def list_keys(
    workspace: Annotated[
        str | None, typer.Option("--workspace", "-w", help="Workspace; omit for admin keys")
    ] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """List keys (their prefixes only; the keys themselves are not stored)."""
    db = open_database(database_url)
    with friendly_errors():
        ws_id = workspace_id(db, workspace) if workspace else None
        with db.session() as session:
            items = [ApiKeyPublic.model_validate(k) for k in ws.list_keys(session, ws_id)]
    if output is OutputFormat.json:
        print_json(items)
    else:
        print_table(
            "API keys",
            ["id", "kind", "prefix", "name", "created", "expires", "last used", "revoked"],
            [
                (
                    k.id,
                    k.kind,
                    k.prefix + "…",
                    k.name,
                    k.created_at,
                    k.expires_at,
                    k.last_used_at,
                    k.revoked_at,
                )
                for k in items
            ],
        )


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[int, typer.Argument(help="The key's id (see `clm keys list`)")],
    workspace: Annotated[
        str | None, typer.Option("--workspace", "-w", help="Workspace; omit for admin keys")
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Revoke a key: every running server refuses it from its next request."""
    db = open_database(database_url)
    with friendly_errors():
        ws_id = workspace_id(db, workspace) if workspace else None
        with db.transaction() as session:
            key = ws.revoke_key(session, key_id, ws_id)
            record(
                session, operator_here(ws_id), "key.revoke", f"key:{key_id}",
                before={"kind": key.kind, "name": key.name, "prefix": key.prefix},
            )  # fmt: skip
    console.print(f"Key {key_id} revoked.")
