"""Backtesting health honestly: did the score, computed as of a cutoff from the events before
it, predict who lapsed in the next H days — and did it beat the simple baselines?

The label is never the churn rule itself. Non-contractual workspaces (no subscription events):
among customers who bought within ``active_days`` before the cutoff, a customer *lapses* when
they make no purchase in the next ``horizon_days``. Subscription workspaces: among customers
whose latest subscription event at the cutoff is a start, trial or renewal, a customer lapses
when they cancel within the horizon.

At each cutoff every score is computed exactly as of the cutoff (``health_current``: features
from the events at or before it, the stage at it, the population's rhythm at it, P(alive) from a
BG/NBD fit on the purchases before it). Baselines at the same cutoff: recency alone (days since
the last purchase), P(alive) alone, frequency alone (purchases so far) and random. Reported for
each: AUC (risk against lapse), lapse rate by decile of risk over the base rate (lift; decile 1
= the riskiest tenth), and precision/recall at the at-risk threshold: the score flags customers
not "happy and stable"; each baseline flags the same number of its riskiest customers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from clm.lifecycle.engines import export_events
from clm.lifecycle.features import DAY, compile_features
from clm.lifecycle.health import CompiledScorecard, Floats
from clm.lifecycle.health_current import ScoredBatch, compute_scores
from clm.lifecycle.health_inputs import exit_flags_at, get_scorecard, stage_transitions
from clm.lifecycle.snapshot import feature_snapshot
from clm.store.engine import Database

PURCHASE = "Order Completed"
SUBSCRIPTION_EVENTS = ("Subscription Started", "Subscription Renewed", "Trial Started")
CANCELLED = "Subscription Cancelled"
SCORE = "health score"
COMPARED = "active scorecard"  # an edit's backtest also scores the scorecard it would replace
BASELINES = ("recency", "P(alive)", "frequency", "random")


class Metrics(BaseModel):
    """``lift_by_decile``: the lapse rate of each tenth, riskiest first, over the base rate.
    ``top_decile_lift``: how much likelier the healthiest tenth is to buy again (or stay)
    than the average customer, the lift a campaign aimed by the score would see: with most
    customers lapsing (82% on CDNOW), a lapse lift cannot exceed 1 / 0.82 = 1.2."""

    name: str
    auc: float | None
    lift_by_decile: list[float]
    top_decile_lift: float | None
    precision_at_risk: float | None
    recall_at_risk: float | None


class CutoffResult(BaseModel):
    cutoff: datetime
    customers: int
    lapsed: int
    flagged: int  # customers the score calls at risk or unhappy
    metrics: list[Metrics]  # the score first, then the baselines
    lost_to: list[str]  # baselines whose AUC beat the score's


class BacktestReport(BaseModel):
    scorecard: str
    label: str
    horizon_days: int
    cutoffs: list[CutoffResult]
    mean_auc: dict[str, float]
    warnings: list[str]


def auc(risk: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_]) -> float | None:
    """Area under the ROC curve by the rank sum (Mann-Whitney U), ties averaged."""
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = pd.Series(risk).rank(method="average").to_numpy()
    u = ranks[labels].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def metrics(
    name: str, risk: Floats, labels: npt.NDArray[np.bool_], flagged: npt.NDArray[np.bool_]
) -> Metrics:
    """AUC, lift by decile (riskiest first, ties in customer order) and precision/recall."""
    lift: list[float] = []
    top: float | None = None
    if len(labels) >= 10 and labels.any() and not labels.all():
        order = np.argsort(-risk, kind="stable")
        parts = np.array_split(order, 10)
        base = labels.mean()
        lift = [round(float(labels[p].mean() / base), 3) for p in parts]
        top = round(float((~labels[parts[-1]]).mean() / (1.0 - base)), 3)
    precision = float(labels[flagged].mean()) if flagged.any() else None
    recall = float(flagged[labels].mean()) if labels.any() else None
    return Metrics(
        name=name,
        auc=auc(risk, labels),
        lift_by_decile=lift,
        top_decile_lift=top,
        precision_at_risk=precision,
        recall_at_risk=recall,
    )


def _top(risk: Floats, count: int) -> npt.NDArray[np.bool_]:
    flagged = np.zeros(len(risk), dtype=bool)
    flagged[np.argsort(-risk, kind="stable")[:count]] = True
    return flagged


def p_alive_at(events: pa.Table, cutoff: int) -> dict[int, float]:
    """P(alive) of each purchaser from a BG/NBD fit on the purchases at or before ``cutoff``
    (days as the unit); empty when the fit fails (too few customers)."""
    from clm.predict import BetaGeo, rfm_summary

    mask = pc.and_(
        pc.equal(events.column("name"), PURCHASE), pc.less_equal(events.column("ts"), cutoff)
    )
    bought = events.filter(mask)
    if bought.num_rows == 0:
        return {}
    frame = pd.DataFrame(
        {
            "customer": bought.column("customer_id").to_numpy(),
            "date": pd.to_datetime(bought.column("ts").to_numpy(), unit="s"),
        }
    )
    end = pd.Timestamp(cutoff, unit="s")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = rfm_summary(frame, customer="customer", date="date", end=end, unit="D")
            fitted = BetaGeo().fit(summary)
            alive = fitted.p_alive(summary)
    except (ValueError, ArithmeticError, np.linalg.LinAlgError):
        return {}
    return {int(str(k)): float(v) for k, v in alive.items()}


def with_p_alive(alive: dict[int, float]) -> Callable[[pa.Table], pa.Table]:
    """Replace the snapshot's P(alive) by the refitted one (as if predictions had been
    refreshed at the cutoff)."""

    def adjust(table: pa.Table) -> pa.Table:
        if "p_alive" not in table.column_names:
            return table
        ids = table.column("customer_id").to_pylist()
        values = pa.array([alive.get(int(c)) for c in ids], pa.float64())
        return table.set_column(table.column_names.index("p_alive"), "p_alive", values)

    return adjust


def _label_features(subscription: bool) -> tuple[set[str], dict[str, object]]:
    from clm.lifecycle.definitions import FeatureDefinition

    custom = {
        "bt_purchases": FeatureDefinition(kind="count", event=PURCHASE),
        "bt_last_purchase": FeatureDefinition(kind="last_ts", event=PURCHASE),
        "bt_cancellations": FeatureDefinition(kind="count", event=CANCELLED),
        "bt_subscription": FeatureDefinition(
            kind="last", event=[*SUBSCRIPTION_EVENTS, CANCELLED], field="name"
        ),
    }
    wanted = {"bt_cancellations", "bt_subscription"} if subscription else set()
    return wanted | {"bt_purchases", "bt_last_purchase"}, custom  # type: ignore[return-value]


def cutoff_dates(first_ts: int, last_ts: int, horizon_days: int, step_months: int) -> list[int]:
    """Month ends from the end of the log's ninth month, every ``step_months``, while the
    horizon still fits in the log."""
    first = datetime.fromtimestamp(first_ts, UTC)
    month = first.year * 12 + first.month - 1 + 9  # the month after the ninth
    found: list[int] = []
    while True:
        year, index = divmod(month, 12)
        end = datetime(year, index + 1, 1, tzinfo=UTC) - timedelta(seconds=1)
        stamp = int(end.timestamp())
        if stamp + horizon_days * DAY > last_ts:
            return found
        found.append(stamp)
        month += step_months


def default_cutoffs(
    log: pa.Table, subscription: bool, horizon_days: int, step_months: int
) -> list[int]:
    """Cutoffs from the end of the ninth month of the history that matters: from the first
    purchase in a non-contractual workspace (touchpoints before anyone bought do not count),
    from the first event in a subscription one."""
    if not subscription and log.num_rows:
        log = log.filter(pc.equal(log.column("name"), PURCHASE))
    if log.num_rows == 0:
        return []
    ts = log.column("ts")
    return cutoff_dates(int(pc.min(ts).as_py()), int(pc.max(ts).as_py()), horizon_days, step_months)


def backtest(
    db: Database,
    workspace_id: int,
    *,
    horizon_days: int = 90,
    step_months: int = 3,
    active_days: int = 365,
    cutoffs: list[datetime] | None = None,
    card: CompiledScorecard | None = None,
    events: pa.Table | None = None,
    on_cutoff: Callable[[int, int], None] | None = None,
    latest: int | None = None,
    compare: CompiledScorecard | None = None,
) -> BacktestReport:
    """Score the workspace's customers at each cutoff and compare with the baselines.
    ``latest``: only the last that many default cutoffs (a quicker answer for an editor).
    ``compare``: a second scorecard scored beside ``card`` (as ``active scorecard``), so an
    edit's backtest shows whether it beats the scorecard it would replace."""
    if card is None:
        _, card = get_scorecard(db, workspace_id)
    log = events if events is not None else export_events(db, workspace_id)
    names = set(pc.unique(log.column("name")).to_pylist()) if log.num_rows else set()
    subscription = bool(names & set(SUBSCRIPTION_EVENTS))
    label = (
        f"cancels within {horizon_days} days (customers subscribed at the cutoff)"
        if subscription
        else f"no purchase in the next {horizon_days} days (customers who bought in the "
        f"{active_days} days before the cutoff)"
    )
    if cutoffs is not None:
        stamps = [int(c.timestamp()) for c in cutoffs]
    else:
        stamps = default_cutoffs(log, subscription, horizon_days, step_months)
    if latest is not None:
        stamps = stamps[-latest:] if latest > 0 else []
    results = []
    for done, cutoff in enumerate(stamps, start=1):
        results.append(
            _one_cutoff(
                db, workspace_id, card, log, cutoff, horizon_days, active_days, subscription,
                compare,
            )
        )  # fmt: skip
        if on_cutoff:
            on_cutoff(done, len(stamps))
    return _report(card, label, horizon_days, results)


def _report(
    card: CompiledScorecard, label: str, horizon_days: int, results: list[CutoffResult]
) -> BacktestReport:
    mean_auc: dict[str, float] = {}
    for name in (SCORE, COMPARED, *BASELINES):
        values = [m.auc for r in results for m in r.metrics if m.name == name and m.auc is not None]
        if values:
            mean_auc[name] = round(float(np.mean(values)), 4)
    problems = [
        f"WARNING: at {r.cutoff:%Y-%m-%d} the health score (AUC {r.metrics[0].auc:.3f}) loses to "
        + ", ".join(
            f"{m.name} ({m.auc:.3f})" for m in r.metrics[1:] if m.name in r.lost_to and m.auc
        )
        for r in results
        if r.lost_to and r.metrics[0].auc is not None
    ]
    if not results:
        problems.append("WARNING: no cutoff fits: the log is shorter than nine months + horizon")
    return BacktestReport(
        scorecard=f"{card.name} v{card.version}",
        label=label,
        horizon_days=horizon_days,
        cutoffs=results,
        mean_auc=mean_auc,
        warnings=problems,
    )


def cohort_at(
    db: Database,
    workspace_id: int,
    log: pa.Table,
    cutoff: int,
    horizon_days: int,
    active_days: int,
    subscription: bool,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], Floats, Floats]:
    """The customers active at ``cutoff``, whether each lapsed within the horizon, and their
    recency (days) and frequency (purchases) at the cutoff."""
    wanted, custom = _label_features(subscription)
    features, _ = compile_features(wanted, custom, {})  # type: ignore[arg-type]
    before = feature_snapshot(db, workspace_id, features, cutoff, engine="duckdb", events=log)
    after = feature_snapshot(
        db, workspace_id, features, cutoff + horizon_days * DAY, engine="duckdb", events=log
    )
    ids = np.asarray(before.column("customer_id").to_numpy(), dtype=np.int64)
    later = dict(zip(after.column("customer_id").to_pylist(), after.to_pylist(), strict=True))
    rows = before.to_pylist()
    last = np.array([r["bt_last_purchase"] or math.nan for r in rows], dtype=np.float64)
    count = np.array([r["bt_purchases"] or 0 for r in rows], dtype=np.float64)
    recency = (cutoff - last) / DAY
    if subscription:
        active = np.array([r["bt_subscription"] in SUBSCRIPTION_EVENTS for r in rows])
        lapsed = np.array(
            [
                later[int(c)]["bt_cancellations"] > r["bt_cancellations"]
                for c, r in zip(ids, rows, strict=True)
            ]
        )
    else:
        active = ~np.isnan(recency) & (recency <= active_days)
        lapsed = np.array(
            [
                later[int(c)]["bt_purchases"] == r["bt_purchases"]
                for c, r in zip(ids, rows, strict=True)
            ]
        )
    return ids[active], lapsed[active], recency[active], count[active]


def _one_cutoff(
    db: Database,
    workspace_id: int,
    card: CompiledScorecard,
    log: pa.Table,
    cutoff: int,
    horizon_days: int,
    active_days: int,
    subscription: bool,
    compare: CompiledScorecard | None = None,
) -> CutoffResult:
    ids, lapsed, recency, frequency = cohort_at(
        db, workspace_id, log, cutoff, horizon_days, active_days, subscription
    )
    alive = p_alive_at(log, cutoff)
    batch = scores_at(db, workspace_id, card, log, cutoff, alive)
    position = {int(c): i for i, c in enumerate(batch.customers.tolist())}
    rows = np.array([position[int(c)] for c in ids], dtype=np.int64)
    score = batch.scores.score[rows]
    flagged = batch.scores.state[rows] != "happy"
    own_flags = {SCORE: flagged}
    risks = {SCORE: 100.0 - score}
    if compare is not None:
        other, own_flags[COMPARED] = _scores(db, workspace_id, compare, log, cutoff, alive, ids)
        risks[COMPARED] = 100.0 - other
    risks |= {
        "recency": np.nan_to_num(recency, nan=1e9),
        "P(alive)": np.array([1.0 - alive.get(int(c), math.nan) for c in ids]),
        "frequency": -frequency,
        "random": np.random.default_rng(cutoff).random(len(ids)),
    }
    found = []
    for name, risk in risks.items():
        if np.isnan(risk).all():
            continue
        risk = np.nan_to_num(risk, nan=0.0)
        marks = own_flags[name] if name in own_flags else _top(risk, int(flagged.sum()))
        found.append(metrics(name, risk, lapsed, marks))
    own = found[0].auc
    lost = [
        m.name
        for m in found[1:]
        if m.name in BASELINES and own is not None and m.auc is not None and m.auc > own
    ]
    return CutoffResult(
        cutoff=datetime.fromtimestamp(cutoff, UTC),
        customers=len(ids),
        lapsed=int(lapsed.sum()),
        flagged=int(flagged.sum()),
        metrics=found,
        lost_to=lost,
    )


def _scores(
    db: Database,
    workspace_id: int,
    card: CompiledScorecard,
    log: pa.Table,
    cutoff: int,
    alive: dict[int, float],
    ids: npt.NDArray[np.int64],
) -> tuple[Floats, npt.NDArray[np.bool_]]:
    """``card``'s scores at ``cutoff`` of the customers ``ids`` (in that order), and whom it
    flags (not "happy and stable")."""
    batch = scores_at(db, workspace_id, card, log, cutoff, alive)
    position = {int(c): i for i, c in enumerate(batch.customers.tolist())}
    rows = np.array([position[int(c)] for c in ids], dtype=np.int64)
    return (
        np.asarray(batch.scores.score[rows], dtype=np.float64),
        np.asarray(batch.scores.state[rows] != "happy", dtype=np.bool_),
    )


def scores_at(
    db: Database,
    workspace_id: int,
    card: CompiledScorecard,
    log: pa.Table,
    cutoff: int,
    alive: dict[int, float],
) -> ScoredBatch:
    """Every customer's score as of ``cutoff``, from the events before it alone. Stages come
    from the stored stage history (a transition at or before the cutoff depends only on the
    events before it)."""
    transitions = stage_transitions(db, workspace_id, cutoff)

    def exits(customers: npt.NDArray[np.int64]) -> Floats:
        order = np.argsort(customers, kind="stable")
        found = np.empty(len(customers))
        found[order] = exit_flags_at(
            transitions, customers[order], np.full(len(customers), cutoff, dtype=np.int64)
        )
        return found

    return compute_scores(
        db, workspace_id, card, cutoff, engine="duckdb", events=log, exit_stage=exits,
        adjust=with_p_alive(alive),
    )  # fmt: skip
