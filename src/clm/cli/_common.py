"""What every command shares: opening the database, finding the workspace, printing results."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import pydantic
import typer
import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from clm.config import get_settings
from clm.errors import ClmError
from clm.store.engine import Database
from clm.store.workspaces import get_workspace

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # an error is one line, however long
F = TypeVar("F", bound=Callable[..., Any])


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="table for people, json for scripts")
]
WorkspaceOption = Annotated[
    str, typer.Option("--workspace", "-w", help="Workspace slug or id", envvar="CLM_WORKSPACE")
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL; default: CLM_DATABASE_URL or the SQLite file in CLM_DATA_DIR",
    ),
]


def open_database(url: str | None = None) -> Database:
    return Database.open(url or get_settings().effective_database_url)


def workspace_id(db: Database, ref: str) -> int:
    with db.session() as session:
        return get_workspace(session, ref).id


@contextmanager
def friendly_errors() -> Iterator[None]:
    """A ClmError, or input a pydantic model refused, becomes a one-line message and exit code
    1, never a traceback."""
    try:
        yield
    except ClmError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    except pydantic.ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        err_console.print(f"[red]error:[/red] invalid {exc.title}: {details}", highlight=False)
        raise typer.Exit(1) from exc
    except yaml.YAMLError as exc:
        err_console.print(f"[red]error:[/red] not valid YAML or JSON: {exc}", highlight=False)
        raise typer.Exit(1) from exc
    except UnicodeDecodeError as exc:  # a file (or argument) in another encoding
        err_console.print(f"[red]error:[/red] not UTF-8 text: {exc}", highlight=False)
        raise typer.Exit(1) from exc
    except OverflowError as exc:  # e.g. an id past 64 bits reaching SQLite
        err_console.print(f"[red]error:[/red] a number is out of range: {exc}", highlight=False)
        raise typer.Exit(1) from exc


@contextmanager
def open_workspace(url: str | None, ref: str) -> Iterator[tuple[Database, int]]:
    """Open the database and find workspace ``ref``, for a command's work on that workspace.

    ``with open_workspace(url, ref) as (db, ws_id):`` -- an unknown workspace, or a ClmError in
    the block, becomes a one-line message and exit code 1 (:func:`friendly_errors`).
    """
    db = open_database(url)
    with friendly_errors():
        yield db, workspace_id(db, ref)


def progress_line(message: str) -> None:
    """A progress line on stderr: a timestamped log line off a terminal (a pipe, a file)."""
    if err_console.is_terminal:
        err_console.print(message, style="dim", highlight=False)
    else:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        err_console.print(f"{stamp} {message}", highlight=False, soft_wrap=True)


@contextmanager
def heartbeat(what: str, every: float = 5.0) -> Iterator[None]:
    """A ``progress_line`` every ``every`` seconds while the work lasts (none for work shorter
    than that, so fast commands and one-line errors stay one line). For long commands whose
    progress bar or spinner nobody sees: off a terminal."""
    stop = threading.Event()
    started = time.perf_counter()

    def beat() -> None:
        while not stop.wait(every):
            progress_line(f"{what}: still computing ({time.perf_counter() - started:.0f} s)")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, default=str) + "\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    print_uncut(console, table)


def print_uncut(target: Console, table: Table) -> None:
    """A table never cut short: on a terminal long cells wrap (``overflow="fold"`` columns);
    elsewhere (a pipe, a file) it is printed as wide as it needs, whatever the width."""
    if target.is_terminal:
        target.print(table)
        return
    unconstrained = target.options.update_width(100_000)
    needed = Measurement.get(target, unconstrained, table).maximum
    Console(file=target.file, width=max(target.width, needed), highlight=False).print(table)


def print_listing(
    output: OutputFormat,
    value: Any,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """What a listing command prints: ``value`` as JSON for scripts, else a table of ``rows``."""
    if output is OutputFormat.json:
        print_json(value)
    else:
        print_table(title, columns, rows)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    return str(value)


MINUS = "\u2212"  # a typographic minus sign, as the web app's format helpers print


def _tenths(value: float) -> str:
    """1,234.5 or 3 (a whole number keeps no ".0"), without sign."""
    text = f"{abs(value):,.1f}"
    return text[:-2] if text.endswith(".0") else text


def percent(ratio: float | None) -> str:
    """A share as people read it: 0.176 is "17.6%" (the web app's ``pct``)."""
    return "" if ratio is None else f"{MINUS if ratio < 0 else ''}{_tenths(100 * ratio)}%"


def percentage_points(ratio: float | None) -> str:
    """A difference of two shares in percentage points: 0.032 is "+3.2 pp", -0.004 "−0.4 pp",
    with no sign when it rounds to zero (the web app's ``percentagePoints``)."""
    if ratio is None:
        return ""
    text = _tenths(100 * ratio)
    sign = "" if text == "0" else "+" if ratio > 0 else MINUS
    return f"{sign}{text} pp"
