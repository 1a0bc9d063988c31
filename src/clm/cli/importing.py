"""``clm import``: load event files and transaction logs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from clm.cli._common import (
    DatabaseOption,
    FormatOption,
    OutputFormat,
    WorkspaceOption,
    console,
    friendly_errors,
    open_workspace,
    print_json,
    print_table,
)
from clm.errors import ValidationError
from clm.ingest.importer import FileFormat, ImportReport, import_events, import_transactions

import_app = typer.Typer(help="Import events or a transaction log (CSV, JSON Lines, Parquet).")

FileArgument = Annotated[
    Path, typer.Argument(help="CSV, JSON Lines (.jsonl), Parquet, or whitespace-separated .txt")
]
FileFormatOption = Annotated[
    str | None, typer.Option("--file-format", help="csv, jsonl, parquet or whitespace")
]
RejectedOption = Annotated[
    Path | None, typer.Option(help="Write every rejected row, with reasons, to this JSONL file")
]
StrictOption = Annotated[bool, typer.Option(help="Exit with status 1 if any row is rejected")]


def _file_format(value: str | None) -> FileFormat | None:
    if value not in (None, "csv", "jsonl", "parquet", "whitespace"):
        raise ValidationError(f"Unknown file format {value!r}: use csv, jsonl, parquet, whitespace")
    return value  # type: ignore[return-value]


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field or not column:
            raise ValidationError(f"--map takes FIELD=COLUMN, got {pair!r}")
        mapping[column] = field
    return mapping


def _finish(
    report: ImportReport, output: OutputFormat, rejected_out: Path | None, strict: bool
) -> None:
    if rejected_out:
        with rejected_out.open("wb") as sink:
            for row in report.rejected:
                sink.write(orjson.dumps({"line": row.line, "errors": row.errors}) + b"\n")
    if output is OutputFormat.json:
        print_json(
            {
                "read": report.read,
                "stored": report.stored,
                "duplicates": report.duplicates,
                "rejected": [{"line": r.line, "errors": r.errors} for r in report.rejected],
            }
        )
    else:
        console.print(
            f"read {report.read:,}  stored {report.stored:,}  already there "
            f"{report.duplicates:,}  rejected {len(report.rejected):,}"
        )
        if report.rejected:
            print_table(
                "Rejected rows (first 20)",
                ["line", "field", "reason"],
                [
                    (r.line, ".".join(map(str, e["loc"])), e["message"])
                    for r in report.rejected[:20]
                    for e in r.errors[:1]
                ],
            )
    if strict and report.rejected:
        raise typer.Exit(1)


def _run(
    importer: Callable[..., ImportReport],
    file: Path,
    workspace: str,
    database_url: str | None,
    **options: Any,
) -> ImportReport:
    """Open the database, find the workspace, run ``importer`` under a progress bar."""
    bar = Progress(
        TextColumn(f"importing {file.name}"), BarColumn(),
        TextColumn("{task.completed:,} rows"), TimeElapsedColumn(),
        console=console, transient=True,
    )  # fmt: skip
    with open_workspace(database_url, workspace) as (db, ws_id), bar:
        task = bar.add_task("import", total=None)
        return importer(
            db, ws_id, file, progress=lambda n: bar.update(task, completed=n), **options
        )


@import_app.command("events")
def events(
    file: FileArgument,
    workspace: WorkspaceOption,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="FIELD=COLUMN, e.g. userId=contact or properties.plan=tier"),
    ] = None,
    file_format: FileFormatOption = None,
    rejected_out: RejectedOption = None,
    strict: StrictOption = False,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Import one Segment message per row; rows are validated like the HTTP API's."""
    with friendly_errors():
        options = {"file_format": _file_format(file_format), "mapping": _mapping(map_ or [])}
    report = _run(import_events, file, workspace, database_url, **options)
    _finish(report, output, rejected_out, strict)


@import_app.command("transactions")
def transactions(
    file: FileArgument,
    workspace: WorkspaceOption,
    customer: Annotated[str, typer.Option(help="Column with the customer id")] = "customer_id",
    date: Annotated[str, typer.Option(help="Column with the purchase date or time")] = "date",
    amount: Annotated[str, typer.Option(help="Column with the amount paid")] = "amount",
    quantity: Annotated[str | None, typer.Option(help="Column with the item count")] = None,
    order_id: Annotated[str | None, typer.Option(help="Column with a unique order id")] = None,
    date_format: Annotated[
        str | None, typer.Option(help="strftime format of the date column, e.g. %Y%m%d")
    ] = None,
    currency: Annotated[str | None, typer.Option(help="ISO currency of every amount")] = None,
    event: Annotated[str, typer.Option(help="Name of the purchase events")] = "Order Completed",
    file_format: FileFormatOption = None,
    rejected_out: RejectedOption = None,
    strict: StrictOption = False,
    database_url: DatabaseOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Import a transaction log (customer, date, amount) as purchase events."""
    with friendly_errors():
        fmt = _file_format(file_format)
    report = _run(
        import_transactions, file, workspace, database_url, customer=customer, date=date,
        amount=amount, quantity=quantity, order_id=order_id, date_format=date_format,
        currency=currency, event=event, file_format=fmt,
    )  # fmt: skip
    _finish(report, output, rejected_out, strict)
