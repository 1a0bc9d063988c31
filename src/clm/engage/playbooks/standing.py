"""Where customers stand at an instant: lifecycle stage, health state, RFM segment.

Playbooks read these for branch conditions, templates and segment triggers: stages from the
stage history; a segment's members from the stored current state through the one condition
compiler (``clm.lifecycle.conditions``); RFM segments over the log as the RFM report has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from clm.analytics import report_source, rfm_scores
from clm.lifecycle import get_stage_model
from clm.lifecycle.conditions import Condition
from clm.lifecycle.customer_list import matching_ids
from clm.store.engine import Database
from clm.store.models import StageTransition


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


def rfm_segments(db: Database, workspace_id: int, at: datetime) -> dict[int, str]:
    """Each buyer's RFM segment at ``at`` ("Champions", "At risk", ...), as in the RFM report
    (over the log; ``customer_states`` stores the same for now)."""
    with report_source(db, workspace_id) as source:
        table = source.run(
            rfm_scores(source.events, int(at.timestamp())).select("customer_id", "segment")
        )
    return {int(r["customer_id"]): str(r["segment"]) for r in table.to_pylist()}


def segment_members(
    db: Database, workspace_id: int, conditions: Sequence[Condition], at: datetime
) -> set[int]:
    """The live customers meeting every condition, evaluated in the database by the one
    compiler of ``clm.lifecycle.conditions`` (as a saved segment's members are). ``rfm`` is
    the segment stored in ``customer_states`` (the live loop refreshes it every pass)."""
    return set(matching_ids(db, workspace_id, conditions, now=at))
