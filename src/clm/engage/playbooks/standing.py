"""Where customers stand at an instant: lifecycle stage, health state, RFM segment.

Playbooks read these for branch conditions, templates and segment triggers. Each is read from
the derived tables the lifecycle engine writes (stage history, health snapshots), or for RFM
computed over the log by the analytics definition, so a segment means the same here as in the
RFM report.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from clm.analytics import report_source, rfm_scores
from clm.lifecycle import get_stage_model
from clm.lifecycle.conditions import Condition, conditions_hold
from clm.lifecycle.customer_list import matching_ids
from clm.store.engine import Database
from clm.store.models import HealthSnapshot, StageTransition


def stages_at(
    db: Database, workspace_id: int, session: Session, ids: Sequence[int], at: datetime
) -> dict[int, str]:
    """Each customer's stage at ``at`` (customers with no stage yet are absent)."""
    info, _ = get_stage_model(db, workspace_id)
    found: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(StageTransition.customer_id, StageTransition.to_stage)
            .where(
                StageTransition.definition_id == info.id,
                StageTransition.customer_id.in_(ids[start : start + 500]),
                StageTransition.ts <= int(at.timestamp()),
            )
            .order_by(StageTransition.customer_id, StageTransition.ts)
        )
        for cid, stage in rows:
            found[cid] = stage
    return found


def health_states(session: Session, workspace_id: int, at: datetime) -> dict[int, str]:
    """Each customer's latest health state at ``at``."""
    rows = session.execute(
        select(HealthSnapshot.customer_id, HealthSnapshot.state)
        .where(
            HealthSnapshot.workspace_id == workspace_id,
            HealthSnapshot.ts <= int(at.timestamp()),
        )
        .order_by(HealthSnapshot.ts, HealthSnapshot.id)
    )
    return {int(c): str(s) for c, s in rows}


def rfm_segments(db: Database, workspace_id: int, at: datetime) -> dict[int, str]:
    """Each buyer's RFM segment at ``at`` ("Champions", "At risk", ...), as in the RFM report."""
    with report_source(db, workspace_id) as source:
        table = source.run(
            rfm_scores(source.events, int(at.timestamp())).select("customer_id", "segment")
        )
    return {int(r["customer_id"]): str(r["segment"]) for r in table.to_pylist()}


def segment_members(
    db: Database, workspace_id: int, conditions: Sequence[Condition], at: datetime
) -> set[int]:
    """The live customers meeting every condition, evaluated in the database by the one
    compiler of ``clm.lifecycle.conditions`` (as a saved segment's members are).

    Conditions on ``rfm`` are met by the customers in that RFM segment at ``at`` as the RFM
    report computes it, intersected with the rest."""
    rfm = [c for c in conditions if c.attr == "rfm"]
    others = [c for c in conditions if c.attr != "rfm"]
    members = set(matching_ids(db, workspace_id, others, now=at))
    if rfm:
        segments = rfm_segments(db, workspace_id, at)
        members = {
            cid for cid in members if conditions_hold(rfm, {"rfm": segments.get(cid)}, None, None)
        }
    return members
