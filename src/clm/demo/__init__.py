"""The demo: the real CDNOW transaction log with synthetic touchpoints, in an embedded store."""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from clm.demo.touchpoints import journeys
from clm.errors import ValidationError
from clm.ingest import ingest
from clm.ingest.importer import import_transactions
from clm.predictions import fit_workspace
from clm.store import workspaces as ws
from clm.store.engine import Database

log = logging.getLogger("clm.demo")
CDNOW = Path(__file__).parent / "data" / "cdnow_master.txt.gz"
WORKSPACE = "cdnow"
CDNOW_END = date(1998, 6, 30)  # the last day of the CDNOW log

__all__ = ["DemoSummary", "build_demo", "cdnow_transactions"]


@dataclass
class DemoSummary:
    workspace_id: int
    customers: int
    purchases: int
    touchpoints: int
    predictions: int
    write_key: str | None
    secret_key: str | None


def _predictions(db: Database, workspace_id: int) -> int:
    """Score the customers with BG/NBD; a sample too small to fit (``--customers`` of a few
    dozen) leaves the demo without predictions rather than without a demo."""
    try:
        return fit_workspace(db, workspace_id, model="bgnbd", as_of=CDNOW_END).scores_written
    except ValidationError as exc:
        log.warning("demo: no predictions: %s", exc)
        return 0


def _lifecycle(db: Database, workspace_id: int) -> None:
    """The shipped classic stage model (applied once), then stages and health recomputed."""
    from clm.lifecycle import apply_stage_model, run_health, run_lifecycle, shipped_model_text
    from clm.lifecycle.catalog import get_definition

    classic = shipped_model_text("classic")
    if get_definition(db, workspace_id, "stages")[2] != classic:
        apply_stage_model(db, workspace_id, classic)
    run_lifecycle(db, workspace_id, engine="duckdb")
    run_health(db, workspace_id)


def cdnow_transactions(customers: int | None = None) -> pl.DataFrame:
    """The CDNOW master log (Fader & Hardie; 23,570 customers), optionally its first N."""
    text = gzip.decompress(CDNOW.read_bytes()).decode()
    frame = pl.read_csv(
        io.StringIO("\n".join(",".join(line.split()) for line in text.splitlines())),
        schema_overrides={"customer_id": pl.String, "date": pl.String},
    ).with_columns(pl.col("date").str.to_datetime("%Y%m%d", time_zone="UTC"))
    if customers is not None:
        keep = frame.select("customer_id").unique().sort("customer_id").head(customers)
        frame = frame.join(keep, on="customer_id")
    return frame


def build_demo(
    db: Database,
    *,
    customers: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> DemoSummary:
    """Create (or complete) the ``cdnow`` workspace; safe to run again, nothing is doubled."""
    write_key = secret_key = None
    with db.transaction() as session:
        existing = [w for w in ws.list_workspaces(session) if w.slug == WORKSPACE]
        if existing:
            workspace_id = existing[0].id
        else:
            workspace = ws.create_workspace(session, WORKSPACE, "CDNOW (demo)")
            workspace_id = workspace.id
            write_key = ws.issue_key(session, "write", workspace_id, "demo write key").key
            secret_key = ws.issue_key(session, "secret", workspace_id, "demo secret key").key
    purchases = cdnow_transactions(customers)
    report = import_transactions(
        db, workspace_id, purchases, customer="customer_id", date="date",
        amount="dollar_value", quantity="number_of_cds",
    )  # fmt: skip
    if progress:
        progress("purchases", purchases.height, purchases.height)
    messages = list(journeys(purchases))
    chunk = 5_000
    for start in range(0, len(messages), chunk):
        ingest(db, workspace_id, messages[start : start + chunk])
        if progress:
            progress("touchpoints", min(start + chunk, len(messages)), len(messages))
    scores = _predictions(db, workspace_id)
    _lifecycle(db, workspace_id)
    if progress:
        progress("stages and health", 1, 1)
    return DemoSummary(
        workspace_id=workspace_id,
        customers=purchases.select("customer_id").n_unique(),
        purchases=report.read,
        touchpoints=len(messages),
        predictions=scores,
        write_key=write_key,
        secret_key=secret_key,
    )
