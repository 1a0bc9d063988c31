"""The demo: the real CDNOW transaction log with synthetic touchpoints, in an embedded store.

**Dates are shifted** so that the log's last day (1998-06-30) is *yesterday*: every CDNOW
purchase (and every synthetic touchpoint around it) keeps its weekday-free distance to the end of
the log, so customers who bought in its last weeks are current, those who stopped in 1997 have
churned, and a live event sent today lands right after the log instead of 28 years later. The
shift, in whole days, is fixed when the workspace is first built and kept in its settings
(``demo_shift_days``), so running the demo again the next day doubles nothing; ``clm demo
--fresh`` builds it anew, ending yesterday again. (A workspace built before shifting existed
keeps its original dates.)
"""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from clm.demo.touchpoints import journeys
from clm.errors import ValidationError
from clm.ingest import ingest
from clm.ingest.importer import import_transactions
from clm.predictions import fit_workspace
from clm.store import workspaces as ws
from clm.store.engine import Database
from clm.store.models import Workspace

log = logging.getLogger("clm.demo")
CDNOW = Path(__file__).parent / "data" / "cdnow_master.txt.gz"
WORKSPACE = "cdnow"
CDNOW_END = date(1998, 6, 30)  # the last day of the CDNOW log, as published
SHIFT_SETTING = "demo_shift_days"
# Weekly fits before the last day, as the live loop (which refits daily) would have left them:
# with one fit at the end, every customer's first P(alive) arrived "this week", and the
# overview's movers read that as health falling for most of the demo.
PAST_FITS_WEEKS = 4

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
    shift_days: int = 0  # added to every CDNOW date
    last_day: date = CDNOW_END  # the log's last day after the shift (yesterday, when built)


def shift_for(first_build: bool, settings: dict[str, object], today: date | None = None) -> int:
    """Days to add to CDNOW's dates: stored with the workspace, else (on its first build) what
    makes 1998-06-30 yesterday; 0 for a workspace built before the shift existed."""
    stored = settings.get(SHIFT_SETTING)
    if isinstance(stored, int):
        return stored
    if not first_build:
        return 0
    yesterday = (today or datetime.now(UTC).date()) - timedelta(days=1)
    return (yesterday - CDNOW_END).days


def _predictions(db: Database, workspace_id: int, last_day: date) -> int:
    """Score the customers with BG/NBD as of each of the ``PAST_FITS_WEEKS`` weeks before the
    last day (each fit reads only the purchases up to its day), then as of the last day; the
    number scored by that last fit. A sample too small to fit (``--customers`` of a few dozen)
    leaves the demo without predictions rather than without a demo."""
    written = 0
    for weeks in range(PAST_FITS_WEEKS, -1, -1):
        day = last_day - timedelta(weeks=weeks)
        try:
            written = fit_workspace(db, workspace_id, model="bgnbd", as_of=day).scores_written
        except ValidationError as exc:
            log.warning("demo: no predictions as of %s: %s", day, exc)
            written = 0
    return written


def _lifecycle(db: Database, workspace_id: int) -> None:
    """The shipped classic stage model (applied once), then stages and health recomputed."""
    from clm.lifecycle import apply_stage_model, run_health, run_lifecycle, shipped_model_text
    from clm.lifecycle.catalog import get_definition
    from clm.lifecycle.current_state import rebuild_state

    classic = shipped_model_text("classic")
    if get_definition(db, workspace_id, "stages")[2] != classic:
        apply_stage_model(db, workspace_id, classic)
    run_lifecycle(db, workspace_id, engine="duckdb")
    run_health(db, workspace_id)
    rebuild_state(db, workspace_id)  # the customer list's rows; the live worker keeps them


def cdnow_transactions(customers: int | None = None, shift_days: int = 0) -> pl.DataFrame:
    """The CDNOW master log (Fader & Hardie; 23,570 customers), optionally its first N, with
    every date moved ``shift_days`` later."""
    text = gzip.decompress(CDNOW.read_bytes()).decode()
    frame = pl.read_csv(
        io.StringIO("\n".join(",".join(line.split()) for line in text.splitlines())),
        schema_overrides={"customer_id": pl.String, "date": pl.String},
    ).with_columns(pl.col("date").str.to_datetime("%Y%m%d", time_zone="UTC"))
    if customers is not None:
        keep = frame.select("customer_id").unique().sort("customer_id").head(customers)
        frame = frame.join(keep, on="customer_id")
    if shift_days:
        frame = frame.with_columns(pl.col("date") + pl.duration(days=shift_days))
    return frame


def build_demo(
    db: Database,
    *,
    customers: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    today: date | None = None,
) -> DemoSummary:
    """Create (or complete) the ``cdnow`` workspace, its dates ending the day before ``today``
    (default: the real today); safe to run again, nothing is doubled."""
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
        row = session.get(Workspace, workspace_id)
        assert row is not None
        shift_days = shift_for(not existing, dict(row.settings or {}), today)
        row.settings = {**(row.settings or {}), SHIFT_SETTING: shift_days}
    last_day = CDNOW_END + timedelta(days=shift_days)
    purchases = cdnow_transactions(customers, shift_days)
    report = import_transactions(
        db, workspace_id, purchases, customer="customer_id", date="date",
        amount="dollar_value", quantity="number_of_cds",
    )  # fmt: skip
    if progress:
        progress("purchases", purchases.height, purchases.height)
    # Synthetic touchpoints may follow a customer's last purchase by a few days; none may fall
    # after the log's last day (that would be tomorrow): they are left out.
    cutoff = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), UTC)
    messages = [m for m in journeys(purchases) if datetime.fromisoformat(m["timestamp"]) < cutoff]
    chunk = 5_000
    for start in range(0, len(messages), chunk):
        ingest(db, workspace_id, messages[start : start + chunk])
        if progress:
            progress("touchpoints", min(start + chunk, len(messages)), len(messages))
    scores = _predictions(db, workspace_id, last_day)
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
        shift_days=shift_days,
        last_day=last_day,
    )
