"""``clm customer export|erase|consents`` and ``clm privacy settings|retention``."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from clm.cli._common import (
    DatabaseOption,
    FormatOption,
    OutputFormat,
    WorkspaceOption,
    console,
    err_console,
    open_workspace,
    print_json,
    print_table,
)
from clm.cli.accounts import operator_here
from clm.cli.customers import customer_app

privacy_app = typer.Typer(help="Privacy: retention policy, browser origins (CORS), purges.")


@customer_app.command("export")
def export_command(
    customer_id: Annotated[int, typer.Argument(help="Customer id (a merged-away id works)")],
    workspace: WorkspaceOption,
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout")
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Everything CLM holds about one person, as one JSON document (GDPR/CCPA access)."""
    from clm.privacy import export_customer

    with open_workspace(database_url, workspace) as (db, ws_id):
        document = export_customer(db, ws_id, customer_id, who=operator_here(ws_id))
    text = json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n"
    if output_file is None:
        sys.stdout.write(text)
    else:
        output_file.write_text(text)
        rows = sum(len(r) for r in document["tables"].values())
        err_console.print(f"exported {rows} rows about customer {customer_id} to {output_file}")


@customer_app.command("erase")
def erase_command(
    customer_id: Annotated[int, typer.Argument(help="Customer id (a merged-away id works)")],
    workspace: WorkspaceOption,
    yes: Annotated[bool, typer.Option("--yes", help="Do it: erasure cannot be undone")] = False,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Erase one person: events, identities, traits and every derived row. Their identifiers
    are kept only as keyed hashes, and later events carrying them are refused."""
    from clm.privacy import erase_customer

    if not yes:
        err_console.print("[red]error:[/red] erasure cannot be undone; add --yes to proceed")
        raise typer.Exit(1)
    with open_workspace(database_url, workspace) as (db, ws_id):
        report = erase_customer(db, ws_id, customer_id, who=operator_here(ws_id))
    if output is OutputFormat.json:
        print_json(asdict(report))
        return
    console.print(
        f"erased customer {report.customer_id}"
        + (f" (and merged ids {report.merged_customer_ids})" if report.merged_customer_ids else "")
        + f"; {report.tombstones} identifiers tombstoned"
    )
    print_table("Rows removed", ["table", "rows"], sorted(report.deleted.items()))
    if report.anonymised:
        print_table("Rows of others anonymised", ["table", "rows"],
                    sorted(report.anonymised.items()))  # fmt: skip


@customer_app.command("consents")
def consents_command(
    customer_id: Annotated[int, typer.Argument(help="Customer id (a merged-away id works)")],
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Every consent decision of a customer, oldest first: channel, purpose, source, text."""
    from sqlalchemy import select

    from clm.privacy.person import find_person
    from clm.store.models import ConsentRecord

    with open_workspace(database_url, workspace) as (db, ws_id), db.session() as session:
        person = find_person(session, ws_id, customer_id)
        rows = session.execute(
            select(ConsentRecord.recorded_at, ConsentRecord.channel, ConsentRecord.purpose,
                   ConsentRecord.granted, ConsentRecord.source, ConsentRecord.text)
            .where(ConsentRecord.workspace_id == ws_id,
                   ConsentRecord.customer_id.in_(person.customer_ids))
            .order_by(ConsentRecord.recorded_at, ConsentRecord.id)
        ).all()  # fmt: skip
    if output is OutputFormat.json:
        print_json([dict(row._mapping) for row in rows])
        return
    print_table(
        f"Consent history of customer {person.root}",
        ["when", "channel", "purpose", "granted", "source", "text"],
        [tuple(row) for row in rows],
    )


@privacy_app.command("settings")
def settings_command(
    workspace: WorkspaceOption,
    retention_months: Annotated[
        int | None, typer.Option(help="Purge events older than this many months")
    ] = None,
    keep_forever: Annotated[bool, typer.Option(help="Remove the retention limit")] = False,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(help="A browser origin allowed on /v1 (repeat; replaces the list)"),
    ] = None,
    no_cors: Annotated[bool, typer.Option(help="Allow no browser origin")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Show or change the workspace's retention policy and allowed browser origins."""
    from clm.privacy.settings import (
        PrivacySettings,
        get_privacy_settings,
        set_privacy_settings,
    )

    with open_workspace(database_url, workspace) as (db, ws_id), db.transaction() as session:
        current = get_privacy_settings(session, ws_id).model_dump()
        if retention_months is not None or keep_forever:
            current["retention_months"] = None if keep_forever else retention_months
        if cors_origin or no_cors:
            current["cors_origins"] = [] if no_cors else cors_origin
        updated = PrivacySettings.model_validate(current)
        set_privacy_settings(session, ws_id, updated)
    print_json(updated)


@privacy_app.command("retention")
def retention_command(
    workspace: WorkspaceOption,
    database_url: DatabaseOption = None,
) -> None:
    """Apply the retention policy now (the worker does it every hour)."""
    from clm.privacy import apply_retention

    with open_workspace(database_url, workspace) as (db, ws_id):
        report = apply_retention(db, ws_id, who=operator_here(ws_id))
    if report.retention_months is None:
        console.print("no retention policy: nothing purged")
    else:
        console.print(
            f"purged {report.purged} events older than {report.retention_months} months "
            f"(before {report.cutoff:%Y-%m-%d %H:%M} UTC)"
        )
