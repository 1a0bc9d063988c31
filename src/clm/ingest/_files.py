"""What both importers share: reading flat files, the report, and the after-load refresh."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from clm.errors import ValidationError
from clm.store.bulk import refresh_statistics
from clm.store.engine import Database

FileFormat = Literal["csv", "jsonl", "parquet", "whitespace"]
Progress = Callable[[int], None]


@dataclass
class RejectedRow:
    """A row that was not imported; ``line`` counts from 1 as an editor does (header = 1)."""

    line: int
    errors: list[dict[str, Any]]


@dataclass
class ImportReport:
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)


def detect_format(path: Path) -> FileFormat:
    suffix = path.suffix.lower()
    formats: dict[str, FileFormat] = {
        ".csv": "csv",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".json": "jsonl",
        ".parquet": "parquet",
        ".pq": "parquet",
        ".txt": "whitespace",
        ".tsv": "whitespace",
    }
    if suffix not in formats:
        raise ValidationError(
            f"Cannot tell the format of {path.name}; pass format= csv, jsonl, parquet or whitespace"
        )
    return formats[suffix]


def read_table(path: Path, file_format: FileFormat | None = None) -> tuple[pl.DataFrame, int]:
    """A flat file as strings-preserving columns, and the line number of its first data row."""
    file_format = file_format or detect_format(path)
    if not path.exists():
        raise ValidationError(f"No such file: {path}")
    if file_format == "parquet":
        return pl.read_parquet(path), 1
    if file_format == "csv":
        return pl.read_csv(path, infer_schema=False), 2
    if file_format == "whitespace":
        text = path.read_text()
        lines = text.split()
        header = text.splitlines()[0].split() if text.strip() else []
        if not header or len(lines) % len(header):
            raise ValidationError(f"{path.name}: rows do not all have {len(header)} columns")
        width = len(header)
        columns = {name: lines[width + i :: width] for i, name in enumerate(header)}
        return pl.DataFrame(columns), 2
    raise ValidationError("JSON Lines files are read message by message; use import_events")


def as_source(source: Path | str | pl.DataFrame | Any) -> Path | pl.DataFrame:
    """A path or a polars DataFrame, whatever the caller passed (pandas is converted)."""
    if isinstance(source, pl.DataFrame):
        return source
    if isinstance(source, str | Path):
        return Path(source)
    if type(source).__module__.startswith("pandas"):
        frame: pl.DataFrame = pl.from_pandas(source)
        return frame
    raise ValidationError("source must be a path, a polars DataFrame or a pandas DataFrame")


def row_error(message: str, loc: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"loc": list(loc), "message": message, "type": "value_error"}


def refresh_after_import(db: Database, report: ImportReport) -> None:
    """Fresh planner statistics after a large load; small imports leave them to autovacuum."""
    if report.stored >= 10_000:
        with db.transaction() as session:
            refresh_statistics(session.connection())
