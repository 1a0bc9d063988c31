"""Health re-scoring inside the live loop.

The customers whose inputs changed since the last pass (``touched``) and those whose stored
score the passage of time has changed since (``clm.lifecycle.health_due``: each score is stored
with the next moment it would change by the clock alone) are re-scored exactly as of ``now``
(``clm.lifecycle.score_health``), so a quiet customer's score decays on schedule and no stored
score is older than its next due change by more than a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from clm.lifecycle import health_due, score_health
from clm.store.engine import Database


def rescore_health(
    db: Database, workspace_id: int, now: datetime, touched: Sequence[int]
) -> list[int]:
    """Re-score the touched and the due customers; returns who was scored."""
    ids = sorted({*touched, *(int(c) for c in health_due(db, workspace_id, now))})
    if ids:
        score_health(db, workspace_id, now=now, customer_ids=ids)
    return ids
