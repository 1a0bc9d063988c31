"""Backtesting health: did the score and state predict churn in the following 30/90 days?

At each evaluation date (every ``step_days``), every customer who has a health row and is not
already in an exit stage is scored; the label is whether they entered an exit stage of the
active stage model within the horizon. Reported: AUC of the risk (100 - score), the churn rate by
score decile against the base rate (lift; decile 1 = lowest scores), and precision/recall of
"state is at_risk or unhappy" as the churn prediction.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from datetime import datetime

import numpy as np
from pydantic import BaseModel
from sqlalchemy import select

from clm.lifecycle.catalog import get_stage_model
from clm.lifecycle.health_service import get_scorecard
from clm.store.engine import Database
from clm.store.models import HealthSnapshot, StageTransition

DAY = 86_400


class BacktestResult(BaseModel):
    horizon_days: int
    samples: int
    churners: int
    auc: float | None
    lift_by_decile: list[float]
    precision_at_risk: float | None
    recall_at_risk: float | None


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann-Whitney U), ties averaged."""
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def backtest(
    db: Database,
    workspace_id: int,
    *,
    horizons: tuple[int, ...] = (30, 90),
    step_days: int = 30,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[BacktestResult]:
    stage_info, model = get_stage_model(db, workspace_id)
    exits = {s.name for s in model.stages if s.exit}
    definition_id, _ = get_scorecard(db, workspace_id)
    health: dict[int, list[tuple[int, float, str]]] = defaultdict(list)
    stages: dict[int, list[tuple[int, str]]] = defaultdict(list)
    with db.session() as session:
        for c, ts, s, state in session.execute(
            select(
                HealthSnapshot.customer_id,
                HealthSnapshot.ts,
                HealthSnapshot.score,
                HealthSnapshot.state,
            )
            .where(HealthSnapshot.definition_id == definition_id)
            .order_by(HealthSnapshot.customer_id, HealthSnapshot.ts)
        ):
            health[c].append((ts, s, state))
        for c, ts, stage in session.execute(
            select(StageTransition.customer_id, StageTransition.ts, StageTransition.to_stage)
            .where(StageTransition.definition_id == stage_info.id)
            .order_by(StageTransition.customer_id, StageTransition.ts)
        ):
            stages[c].append((ts, stage))
    all_ts = [ts for rows in health.values() for ts, _, _ in rows]
    if not all_ts:
        return [
            BacktestResult(
                horizon_days=h,
                samples=0,
                churners=0,
                auc=None,
                lift_by_decile=[],
                precision_at_risk=None,
                recall_at_risk=None,
            )
            for h in horizons
        ]
    first = int(start.timestamp()) if start else min(all_ts)
    last = int(end.timestamp()) if end else max(all_ts)
    return [_one(health, stages, exits, h, first, last, step_days) for h in horizons]


def _one(
    health: dict[int, list[tuple[int, float, str]]],
    stages: dict[int, list[tuple[int, str]]],
    exits: set[str],
    horizon: int,
    first: int,
    last: int,
    step_days: int,
) -> BacktestResult:
    scores, states, labels = [], [], []
    for date in range(first, last - horizon * DAY + 1, step_days * DAY):
        for customer, rows in health.items():
            index = bisect_right([r[0] for r in rows], date) - 1
            if index < 0:
                continue
            history = stages.get(customer, [])
            stage_index = bisect_right([t for t, _ in history], date) - 1
            if stage_index >= 0 and history[stage_index][1] in exits:
                continue
            churned = any(date < t <= date + horizon * DAY and s in exits for t, s in history)
            scores.append(rows[index][1])
            states.append(rows[index][2])
            labels.append(churned)
    risk = 100.0 - np.array(scores, dtype=float)
    y = np.array(labels, dtype=bool)
    flagged = np.array([s != "happy" for s in states], dtype=bool)
    lift: list[float] = []
    if len(y) >= 10 and y.any():
        base = y.mean()
        order = np.argsort(-risk, kind="mergesort")
        lift = [round(float(y[part].mean() / base), 3) for part in np.array_split(order, 10)]
    precision = float(y[flagged].mean()) if flagged.any() else None
    recall = float(flagged[y].mean()) if y.any() else None
    return BacktestResult(
        horizon_days=horizon,
        samples=len(y),
        churners=int(y.sum()),
        auc=auc(risk, y),
        lift_by_decile=lift,
        precision_at_risk=precision,
        recall_at_risk=recall,
    )
