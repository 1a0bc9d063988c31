"""Report tables for people (the terminal) and for programs (one CSV or Parquet file a table).

The terminal formats each column by its kind (``clm.analytics.schemas.Kind``): percentages,
thousands separators, two decimals for money, one for days; numbers are right-aligned, and a
table is never cut short with an ellipsis: on a terminal long cells wrap, elsewhere (a pipe, a
file) the table is printed as wide as it needs. Files keep the raw numbers, one file per table,
so ``pandas.read_csv`` reads each one as it is.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from clm.analytics import ReportTable
from clm.cli._common import cell, print_uncut

NUMERIC = {"count", "share", "percent", "money", "days", "number"}


def format_value(value: Any, kind: str) -> str:
    """One cell as people read it; raw text for ``text`` (and for anything not a number)."""
    if value is None:
        return ""
    if kind not in NUMERIC or isinstance(value, bool) or not isinstance(value, int | float):
        return cell(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if kind == "count":
        return f"{value:,.0f}"
    if kind == "share":
        return f"{100 * value:,.1f}%"
    if kind == "percent":
        return f"{value:,.1f}%"
    if kind == "days":
        return f"{value:,.1f}"
    return f"{value:,.2f}"  # money, number


def rich_table(table: ReportTable) -> Table:
    kinds = [*table.kinds, *["text"] * (len(table.columns) - len(table.kinds))]
    shown = Table(title=table.title)
    for column, kind in zip(table.columns, kinds, strict=True):
        numeric = kind in NUMERIC
        shown.add_column(column, justify="right" if numeric else "left", overflow="fold",
                         no_wrap=numeric)  # fmt: skip
    for row in table.rows:
        shown.add_row(*(format_value(v, k) for v, k in zip(row, kinds, strict=True)))
    return shown


def print_tables(console: Console, tables: Sequence[ReportTable],
                 definitions: dict[str, str] | None = None) -> None:  # fmt: skip
    """Each table, then what its figures count. Off a terminal, each as wide as it needs."""
    for table in tables:
        print_uncut(console, rich_table(table))
    if definitions:
        console.print("Definitions:", style="bold")
        for term, meaning in definitions.items():
            console.print(f"  {term}: {meaning}", highlight=False, soft_wrap=True)


def file_name(report: str, table: ReportTable) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", table.name).strip("_") or "table"
    return f"{report}-{slug}"


def write_csv(table: ReportTable, out: Any) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows([[cell(v) for v in row] for row in table.rows])


def write_files(report: str, tables: Sequence[ReportTable], kind: str, directory: Path
                ) -> list[Path]:  # fmt: skip
    """One ``<report>-<table>.csv`` (or ``.parquet``) per table in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        path = directory / f"{file_name(report, table)}.{kind}"
        if kind == "csv":
            with path.open("w", encoding="utf-8", newline="") as out:
                write_csv(table, out)
        else:
            _write_parquet(table, path)
        written.append(path)
    return written


def _write_parquet(table: ReportTable, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(zip(*table.rows, strict=True)) if table.rows else [()] * len(table.columns)
    arrays = [_column(list(values)) for values in columns]
    names = _unique(table.columns)
    pq.write_table(pa.Table.from_arrays(arrays, names=names), path)


def _column(values: list[Any]) -> Any:
    """An Arrow column: numbers stay numbers (ints and floats mixed become floats)."""
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.int64())
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    return pa.array([None if v is None else cell(v) for v in values], type=pa.string())


def _unique(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return result


def stdout_csv(tables: Sequence[ReportTable]) -> None:
    write_csv(tables[0], sys.stdout)
