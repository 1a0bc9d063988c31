"""``clm customer`` and ``clm events``: look a customer up, page through the log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from clm.cli._common import (
    DatabaseOption,
    FormatOption,
    OutputFormat,
    WorkspaceOption,
    cell,
    console,
    open_workspace,
    print_json,
    print_table,
)
from clm.cli.notes import note_app
from clm.store import customers as repo

customer_app = typer.Typer(help="Look up customers: identities, resolution and timeline.")
events_app = typer.Typer(help="Read the event log.")
customer_app.add_typer(note_app, name="note")


@customer_app.command("show")
def show_customer(
    ref: Annotated[str, typer.Argument(help="Customer id, or an identifier with --by")],
    workspace: WorkspaceOption,
    by: Annotated[str, typer.Option(help="id, user_id, anonymous_id, email or ext:<type>")] = "id",
    events: Annotated[int, typer.Option(help="How many recent events to show")] = 20,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """A customer: traits, identities, how they were resolved, and the latest events."""
    with open_workspace(database_url, workspace) as (db, ws_id):
        with db.session() as session:
            if by == "id":
                detail = repo.get_customer(session, ws_id, int(ref))
            else:
                detail = repo.find_customer(session, ws_id, by, ref)
            recent = repo.timeline(session, ws_id, detail.id, limit=events)
        from clm.predictions import latest_predictions

        predictions = latest_predictions(db, ws_id, detail.id, history=1).latest
        from clm.cli.lifecycle import customer_lifecycle_data, print_customer_lifecycle

        lifecycle = customer_lifecycle_data(db, ws_id, detail.id)
    if output is OutputFormat.json:
        print_json(
            {
                "customer": detail,
                "predictions": predictions,
                "lifecycle": lifecycle,
                "timeline": recent,
            }
        )
        return
    console.print(
        f"[bold]Customer {detail.id}[/bold]  user_id={detail.user_id}  email={detail.email}\n"
        f"first seen {cell(detail.first_seen_at)}, last seen {cell(detail.last_seen_at)}, "
        f"{detail.event_count} events"
    )
    if detail.traits:
        console.print(f"traits: {detail.traits}")
    print_table(
        "Identities",
        ["kind", "value", "first seen"],
        [(i.kind, i.value, i.first_seen_at) for i in detail.identities],
    )
    print_table(
        "Resolution",
        ["when", "identifier", "outcome", "reason", "other customer"],
        [
            (r.occurred_at, f"{r.kind}={r.value}", r.outcome, r.reason, r.other_customer_id)
            for r in detail.resolution
        ],
    )
    if predictions is not None:
        print_table(
            f"Predictions ({predictions.model} v{predictions.model_version}, "
            f"as of {cell(predictions.timestamp)})",
            ["P(alive)", "expected purchases, 90 days", "CLV, 12 months"],
            [
                (
                    f"{predictions.p_alive:.3f}",
                    f"{predictions.expected_purchases_90d:.2f}",
                    "" if predictions.clv_12m is None else f"{predictions.clv_12m:,.2f}",
                )
            ],
        )
    print_customer_lifecycle(lifecycle)
    print_table(
        "Timeline (newest first)",
        ["time", "type", "name", "channel", "campaign", "revenue"],
        [(e.timestamp, e.type, e.name, e.channel, e.campaign, e.revenue) for e in recent],
    )


@events_app.command("list")
def list_events(
    workspace: WorkspaceOption,
    after: Annotated[int | None, typer.Option(help="Show events stored after this id")] = None,
    limit: Annotated[int, typer.Option(help="Page size (at most 1000)")] = 50,
    customer: Annotated[int | None, typer.Option(help="Only this customer's events")] = None,
    type: Annotated[str | None, typer.Option(help="identify, track, page, ...")] = None,
    name: Annotated[str | None, typer.Option(help="Event name, e.g. 'Order Completed'")] = None,
    since: Annotated[datetime | None, typer.Option(help="From this time (UTC)")] = None,
    until: Annotated[datetime | None, typer.Option(help="Before this time (UTC)")] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Page through the event log in stored order."""
    with open_workspace(database_url, workspace) as (db, ws_id):
        where = repo.EventFilter(customer, type, name, _utc(since), _utc(until))
        with db.session() as session:
            page = repo.list_events(session, ws_id, where, after=after, limit=limit)
    if output is OutputFormat.json:
        print_json(page)
        return
    print_table(
        "Events",
        ["id", "customer", "time", "type", "name", "channel", "revenue"],
        [
            (e.id, e.customer_id, e.timestamp, e.type, e.name, e.channel, e.revenue)
            for e in page.items
        ],
    )
    if page.next_after is not None:
        console.print(f"[dim]more: --after {page.next_after}[/dim]")


def _utc(value: datetime | None) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
