"""``clm customer note``: add a frontline note (and a 1-5 rating) to a customer, list them."""

from __future__ import annotations

from typing import Annotated

import pydantic
import typer

from clm.cli._common import (
    DatabaseOption,
    FormatOption,
    OutputFormat,
    WorkspaceOption,
    console,
    open_workspace,
    print_json,
    print_table,
)

note_app = typer.Typer(help="Frontline notes: what staff learn about a customer, with a rating.")


@note_app.command("add")
def add(
    customer_id: Annotated[int, typer.Argument(help="The customer's id")],
    text: Annotated[str, typer.Argument(help="What you learned")],
    workspace: WorkspaceOption,
    author: Annotated[str, typer.Option(help="Who writes the note (name or e-mail)")],
    rating: Annotated[
        int | None, typer.Option(help="How the customer feels, 1 (very unhappy) to 5")
    ] = None,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Add a note: an event on the customer's timeline and a health factor."""
    from clm.engage.notes import NoteCreate, add_note

    try:
        note = NoteCreate(text=text, rating=rating, author=author)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        console.print(f"error: {where}: {first['msg']}")
        raise typer.Exit(1) from None
    with open_workspace(database_url, workspace) as (db, ws_id):
        saved = add_note(db, ws_id, customer_id, note)
    if output is OutputFormat.json:
        print_json(saved)
        return
    rated = f", rated {saved.rating}/5" if saved.rating else ""
    console.print(f"note {saved.id} added to customer {saved.customer_id}{rated}")


@note_app.command("list")
def list_command(
    customer_id: Annotated[int, typer.Argument(help="The customer's id")],
    workspace: WorkspaceOption,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """A customer's notes, newest first."""
    from clm.engage.notes import list_notes

    with open_workspace(database_url, workspace) as (db, ws_id):
        notes = list_notes(db, ws_id, customer_id, limit)
    if output is OutputFormat.json:
        print_json(notes)
        return
    print_table(
        f"Notes on customer {customer_id} (newest first)",
        ["when", "author", "rating", "text"],
        [(n.at, n.author, n.rating or "", n.text) for n in notes],
    )
