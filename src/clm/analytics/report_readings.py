"""Stored readings of the seven reports (``clm.analytics.kept``), so the Reports page answers
at once instead of reading the whole log on every request (0.4-1.4 s each on the demo, far
more at 100,000 customers).

One reading per report and canonical parameters: the validated query without its defaults,
so ``?granularity=month`` and no parameter at all are one reading. Its version is what that
report reads, cheaply (one index probe each), read before the report:

* every report: the newest event, identity link (a merge moves events to another customer)
  and erasure or retention purge of the workspace (they delete events; both are audited),
  and the active stage model and scorecard;
* the newest stage transition, health snapshot or spend row for a report that reads them
  (``ReportSpec.reads``; the stage history also for a query naming a stage);
* a hash of the current members of the saved segment a query filters on.

A request answers with the stored reading, marked not current while one refresh runs in the
background; the very first request of a key waits up to ``WAIT`` seconds, then says not ready
(the page shows "computing..." and asks again). The live loop and ``clm demo`` keep each
report's default view stored (``store_report``: no parameters, what the page opens on); other
parameters are read on their first request and pruned with the overview's readings after a
week. ``fresh`` reads afresh (and stores that); the CLI always computes directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import func, select

from clm.analytics.kept import Kind, canonical, readings_of
from clm.analytics.query import STAGE_FIELDS, ReportQuery, check_stages, parse_query
from clm.analytics.reports import (
    HEALTH,
    REPORTS,
    SPEND,
    STAGES,
    known_report,
    run_report,
    saved_members,
)
from clm.analytics.schemas import Report
from clm.lifecycle.catalog import get_stage_model
from clm.store.engine import Database
from clm.store.models import (
    AuditRecord,
    Event,
    HealthSnapshot,
    IdentityLink,
    LifecycleDefinition,
    MarketingSpend,
    StageTransition,
)

WAIT = 5.0  # seconds a first request waits for its reading before answering "not ready"
REFRESH_EVERY = 300.0  # seconds between re-readings of one report by one process
MAX_KEY = 200  # longer canonical parameters are kept under their hash (the column holds 255)
DELETIONS = ("customer.erase", "events.retention_purge")  # audited actions that delete events

KINDS: dict[str, Kind[Report]] = {
    name: Kind(f"report:{name}", TypeAdapter(spec.result), wait=WAIT, min_interval=REFRESH_EVERY)
    for name, spec in REPORTS.items()
}


@dataclass(frozen=True)
class KeptReport:
    """A report as stored: None while its first reading runs; ``current`` False while the
    data it was read from has moved (a refresh is running); ``computed_at`` when it began."""

    report: Report | None
    current: bool
    computed_at: datetime | None


def report_params(query: ReportQuery) -> dict[str, Any]:
    """The key of a query's reading: its parameters without defaults (or their hash)."""
    params = _raw(query)
    text = canonical(params)
    if len(text) <= MAX_KEY:
        return params
    return {"sha256": hashlib.sha256(text.encode()).hexdigest()}


def inputs_version(db: Database, workspace_id: int, reads: frozenset[str]) -> dict[str, Any]:
    """What a report reading ``reads`` (see the module docstring) depends on, now."""
    with db.session() as session:

        def newest(column: Any, *where: Any) -> int:
            return int(session.scalar(select(func.max(column)).where(*where)) or 0)

        facts: dict[str, Any] = {
            "events": newest(Event.id),
            "identities": newest(IdentityLink.id),
            "deletions": newest(
                AuditRecord.id,
                AuditRecord.workspace_id == workspace_id,
                AuditRecord.action.in_(DELETIONS),
            ),
            "definitions": [
                int(d)
                for d in session.scalars(
                    select(LifecycleDefinition.id)
                    .where(
                        LifecycleDefinition.workspace_id == workspace_id,
                        LifecycleDefinition.active.is_(True),
                    )
                    .order_by(LifecycleDefinition.id)
                )
            ],
        }
        if STAGES in reads:
            facts[STAGES] = newest(StageTransition.id)
        if HEALTH in reads:
            facts[HEALTH] = newest(HealthSnapshot.id)
        if SPEND in reads:
            facts[SPEND] = newest(MarketingSpend.id, MarketingSpend.workspace_id == workspace_id)
    return facts


def report_version(db: Database, workspace_id: int, name: str, query: ReportQuery) -> Any:
    """The version of a reading of report ``name`` at ``query``: its inputs' facts and, with
    a saved segment, a hash of its members now (an unknown segment is refused here)."""
    reads = REPORTS[name].reads
    if any(getattr(query, field, None) is not None for field in STAGE_FIELDS):
        reads = reads | {STAGES}
    facts = inputs_version(db, workspace_id, reads)
    if query.saved_segment is not None:
        members = saved_members(db, workspace_id, query.saved_segment)
        listed = ",".join(str(m) for m in sorted(members))
        facts["members"] = hashlib.sha256(listed.encode()).hexdigest()
    return facts


def _reading(db: Database, workspace_id: int, name: str, query: ReportQuery) -> tuple[Report, Any]:
    # The active stage model first: the report installs the default one where there is none,
    # which would outdate a version read before it.
    get_stage_model(db, workspace_id)
    version = report_version(db, workspace_id, name, query)  # first: later changes are seen
    return run_report(db, workspace_id, name, _raw(query)), version


def _raw(query: ReportQuery) -> dict[str, Any]:
    """The query's parameters as ``run_report`` takes them, without defaults."""
    return query.model_dump(mode="json", exclude_defaults=True)


def _checked(db: Database, workspace_id: int, name: str,
             params: dict[str, Any]) -> tuple[str, ReportQuery]:  # fmt: skip
    """The report's catalogue name and its validated query; a stage the active model lacks
    is refused now (never stored as a failed reading)."""
    known = known_report(name)
    query = parse_query(REPORTS[known].query, params)
    if any(getattr(query, field, None) is not None for field in STAGE_FIELDS):
        check_stages(get_stage_model(db, workspace_id)[1], query)
    return known, query


def kept_report(
    db: Database, workspace_id: int, name: str, params: dict[str, Any], *, fresh: bool = False
) -> KeptReport:
    """Report ``name`` at ``params`` from its stored reading (see the module docstring);
    ``fresh`` computes it now, in this thread, and stores it."""
    known, query = _checked(db, workspace_id, name, params)
    kind, key = KINDS[known], report_params(query)

    def compute() -> tuple[Report, Any]:
        return _reading(db, workspace_id, known, query)

    readings = readings_of(db)
    if fresh:
        stored = readings.refresh(kind, workspace_id, key, compute)
        return KeptReport(stored.value, True, stored.computed_at)
    reading, current = readings.get(
        kind, workspace_id, key,
        version=lambda _: report_version(db, workspace_id, known, query), compute=compute,
    )  # fmt: skip
    if reading is None:
        return KeptReport(None, False, None)
    return KeptReport(reading.value, current, reading.computed_at)


def store_report(db: Database, workspace_id: int, name: str) -> bool:
    """Store report ``name``'s default view (what the page opens on) unless the stored one is
    current or young (the live loop, ``clm demo``); True when it read it."""
    query = REPORTS[name].query()
    return readings_of(db).ensure(
        KINDS[name], workspace_id, report_params(query),
        version=lambda _: report_version(db, workspace_id, name, query),
        compute=lambda: _reading(db, workspace_id, name, query),
    )  # fmt: skip
