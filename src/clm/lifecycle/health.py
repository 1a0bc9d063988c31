"""Health: a transparent 0-100 score from a scorecard, its state, and the reasons.

Each factor maps its input linearly from ``worst`` (0) to ``best`` (1), clipped, and earns that
share of its weight. A factor without data is *missing*: left out with the other weights
re-normalised (``missing: skip``, the default) or given a stated prior share; a factor's
weight may decay with the age of its evidence. The score is 100 x the weighted mean of the
present factors, so the contributions add up to it. The state: ``unhappy`` when the sentiment
factors present earn less than ``unhappy_below`` of their weight; else ``at_risk`` when the
risk factors earn less than ``at_risk_below`` of theirs, when there is no risk evidence at all,
or when the customer is in an exit stage; else ``happy``.

Scoring is column-wise (NumPy) over any number of customers or instants: the live scores, the
stored history and the backtest all run the same arithmetic, and ``score`` (one customer) is
the same code on columns of length one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from clm.lifecycle.definitions import Factor, Scorecard
from clm.lifecycle.features import DAY, DefinitionError, FeatureSet, Problem, compile_features

STATES = ("happy", "at_risk", "unhappy")
STATE_LABELS = {
    "happy": "happy and stable",
    "at_risk": "happy but at risk",
    "unhappy": "unhappy",
}
DEFAULT_ACTIONS = {
    "happy": "Keep as is: a good moment to ask for a review or a referral.",
    "at_risk": "Reach out before they drift away: check in, or remind them what is new.",
    "unhappy": "Call them: find out what went wrong and fix it before any offer.",
}
CADENCE_FEATURES = ("first_purchase", "last_purchase", "purchase_count")
Floats = npt.NDArray[np.float64]


def state_label(state: str) -> str:
    """A state in words: one name per state everywhere (the API's counts are keyed by it);
    where no feedback backs "happy", ``sentiment_known`` says so beside it."""
    return STATE_LABELS[state]


@cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import (  # type: ignore[import-untyped]
        SentimentIntensityAnalyzer,
    )

    return SentimentIntensityAnalyzer()


@lru_cache(maxsize=65_536)
def sentiment(text: str) -> float:
    """VADER's compound sentiment of a text: -1 (most negative) .. 1 (most positive)."""
    return float(_vader().polarity_scores(text)["compound"])


@dataclass(frozen=True)
class CompiledScorecard:
    name: str
    version: int
    factors: dict[str, Factor]
    weights: dict[str, float]  # nominal weights scaled to add up to 100
    feature_set: FeatureSet
    unhappy_below: float
    at_risk_below: float
    definition: Scorecard

    def action(self, state: str) -> str:
        return self.definition.actions.get(state) or DEFAULT_ACTIONS[state]  # type: ignore[call-overload]


def factor_features(factor: Factor) -> set[str]:
    """The features a factor reads."""
    names = {n for n in (factor.feature, factor.evidence, factor.decay_from) if n}
    return names | set(CADENCE_FEATURES) if factor.kind == "cadence" else names


def compile_scorecard(card: Scorecard) -> CompiledScorecard:
    wanted: set[str] = set()
    for factor in card.factors.values():
        wanted |= factor_features(factor)
    feature_set, scope = compile_features(wanted, card.features, {})
    problems = []
    for key, factor in card.factors.items():
        problems.extend(_check_factor(key, factor, scope))
    if problems:
        raise DefinitionError(problems)
    total = sum(f.weight for f in card.factors.values())
    weights = {k: 100.0 * f.weight / total for k, f in card.factors.items()}
    return CompiledScorecard(
        card.name,
        card.version,
        dict(card.factors),
        weights,
        feature_set,
        card.unhappy_below,
        card.at_risk_below,
        card,
    )


def _check_factor(key: str, factor: Factor, scope: Mapping[str, str]) -> list[Problem]:
    problems = []
    for field in ("evidence", "decay_from"):
        name = getattr(factor, field)
        if name is not None and name not in scope:
            problems.append(Problem(("factors", key, field), f"unknown feature '{name}'"))
    if factor.decay_from is not None and scope.get(factor.decay_from) not in (None, "timestamp"):
        problems.append(
            Problem(("factors", key, "decay_from"), "decay_from needs a timestamp feature")
        )
    if (factor.decay_days is None) != (factor.decay_from is None):
        problems.append(
            Problem(("factors", key, "decay_days"), "decay_days and decay_from go together")
        )
    if factor.kind != "feature":
        if factor.feature is not None or factor.transform is not None:
            problems.append(
                Problem(("factors", key, "kind"), f"a {factor.kind} factor reads no feature")
            )
    elif factor.feature is None:
        problems.append(Problem(("factors", key, "feature"), "a feature factor needs 'feature'"))
    else:
        kind = scope.get(factor.feature)
        if kind is None:
            problems.append(
                Problem(("factors", key, "feature"), f"unknown feature '{factor.feature}'")
            )
        elif factor.transform == "sentiment" and kind != "string":
            problems.append(
                Problem(
                    ("factors", key, "transform"),
                    f"type mismatch: sentiment reads text, '{factor.feature}' is {kind}",
                )
            )
        elif factor.transform is None and kind not in ("number", "bool", "days"):
            problems.append(
                Problem(
                    ("factors", key, "feature"),
                    f"type mismatch: a factor needs a number, '{factor.feature}' is {kind}",
                )
            )
    if factor.best == factor.worst:
        problems.append(Problem(("factors", key, "best"), "best and worst must differ"))
    return problems


@dataclass
class HealthInputs:
    """What a batch of scores reads: feature columns (numbers as float with NaN for unknown,
    ``days`` and timestamps in seconds, text as objects), the instant of each row, whether each
    customer stands in an exit stage (NaN: unknown), and the population's typical gap between
    purchases in days (for one-time buyers; NaN when nobody bought twice)."""

    columns: Mapping[str, npt.NDArray[Any]]
    now: npt.NDArray[np.int64]
    exit_stage: Floats
    prior_gap_days: float = math.nan


@dataclass
class HealthScores:
    """Scores of a batch: per factor its value (NaN: missing), its share of the score's weight
    after re-normalisation (0: left out) and its points; the points add up to ``score``."""

    score: Floats
    state: npt.NDArray[np.str_]
    values: dict[str, Floats]
    weights: dict[str, Floats]
    points: dict[str, Floats]
    sentiment_share: Floats
    risk_share: Floats


def _numbers(column: npt.NDArray[Any]) -> Floats:
    if column.dtype == object:
        return np.array([math.nan if v is None else float(v) for v in column], dtype=np.float64)
    return np.asarray(column, dtype=np.float64)


def cadence_ratio(inputs: HealthInputs, prior_gaps: float) -> Floats:
    """Days since the last purchase over the customer's typical gap between purchases: their
    own mean gap shrunk towards the population's by ``prior_gaps`` pseudo-gaps."""
    first = _numbers(inputs.columns["first_purchase"])
    last = _numbers(inputs.columns["last_purchase"])
    repeats = np.maximum(_numbers(inputs.columns["purchase_count"]) - 1.0, 0.0)
    prior = inputs.prior_gap_days
    span = np.where(repeats > 0, (last - first) / DAY, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if math.isnan(prior):
            gap = np.where(repeats > 0, span / repeats, np.nan)
        else:
            gap = (span + prior_gaps * prior) / (repeats + prior_gaps)
            gap = np.where(repeats + prior_gaps > 0, gap, prior)
        silence = (inputs.now - last) / DAY
        return np.asarray(silence / np.maximum(gap, 1.0), dtype=np.float64)


def population_gap_days(columns: Mapping[str, npt.NDArray[Any]]) -> float:
    """The population's typical gap between purchases (days): all repeat buyers' purchase
    spans over all their repeat purchases (a pooled mean, robust to one odd customer)."""
    first = _numbers(columns["first_purchase"])
    last = _numbers(columns["last_purchase"])
    repeats = np.maximum(_numbers(columns["purchase_count"]) - 1.0, 0.0)
    mask = (repeats > 0) & ~np.isnan(first) & ~np.isnan(last)
    if not mask.any():
        return math.nan
    return float((last[mask] - first[mask]).sum() / DAY / repeats[mask].sum())


def _sentiments(column: npt.NDArray[Any]) -> Floats:
    """Each text's sentiment (NaN for none or blank), computed once per distinct text."""
    texts = pd.Series(column, dtype=object)
    distinct = {
        t: sentiment(t) if isinstance(t, str) and t.strip() else math.nan
        for t in texts.dropna().unique()
    }
    return texts.map(distinct).to_numpy(dtype=np.float64, na_value=np.nan)


def factor_values(card: CompiledScorecard, key: str, inputs: HealthInputs) -> Floats:
    """The value a factor reads per row (NaN: unknown): days in days, true/false as 1/0."""
    factor = card.factors[key]
    if factor.kind == "cadence":
        return cadence_ratio(inputs, factor.prior_gaps)
    if factor.kind == "stage":
        return np.where(np.isnan(inputs.exit_stage), np.nan, 1.0 - inputs.exit_stage)
    assert factor.feature is not None
    column = inputs.columns[factor.feature]
    if factor.transform == "sentiment":
        return _sentiments(column)
    values = _numbers(column)
    if card.feature_set.features[factor.feature].type == "days":
        return values / DAY
    return values


def score_columns(card: CompiledScorecard, inputs: HealthInputs) -> HealthScores:
    """Score every row of ``inputs``."""
    rows = len(inputs.now)
    values: dict[str, Floats] = {}
    fractions: dict[str, Floats] = {}
    raw_weights: dict[str, Floats] = {}
    for key, factor in card.factors.items():
        value = factor_values(card, key, inputs)
        missing = np.isnan(value)
        if factor.evidence is not None:
            evidence = _numbers(inputs.columns[factor.evidence])
            missing |= np.isnan(evidence) | (evidence == 0)
        fraction = np.clip((value - factor.worst) / (factor.best - factor.worst), 0.0, 1.0)
        weight = np.full(rows, card.weights[key])
        if factor.missing == "skip":
            weight = np.where(missing, 0.0, weight)
            fraction = np.where(missing, 0.0, fraction)
        else:
            fraction = np.where(missing, float(factor.missing), fraction)
        if factor.decay_from is not None and factor.decay_days is not None:
            since = _numbers(inputs.columns[factor.decay_from])
            age_days = np.where(np.isnan(since), 0.0, (inputs.now - since) / DAY)
            weight = weight * np.exp2(-np.maximum(age_days, 0.0) / factor.decay_days)
        values[key] = np.where(missing, np.nan, value)
        fractions[key] = fraction
        raw_weights[key] = weight
    total_weight = sum(raw_weights.values(), np.zeros(rows))
    scale = np.divide(100.0, total_weight, out=np.zeros(rows), where=total_weight > 0)
    weights = {k: w * scale for k, w in raw_weights.items()}
    points = {k: weights[k] * fractions[k] for k in card.factors}
    total = sum(points.values(), np.zeros(rows))
    sentiment_share = _share(card, "sentiment", weights, points)
    risk_share = _share(card, "risk", weights, points)
    # a share exactly at a threshold is not below it
    unhappy = sentiment_share < card.unhappy_below - 1e-9
    at_risk = (
        np.isnan(risk_share) | (risk_share < card.at_risk_below - 1e-9) | (inputs.exit_stage == 1)
    )
    state = np.where(unhappy, "unhappy", np.where(at_risk, "at_risk", "happy"))
    return HealthScores(total, state, values, weights, points, sentiment_share, risk_share)


def _share(
    card: CompiledScorecard, axis: str, weights: dict[str, Floats], points: dict[str, Floats]
) -> Floats:
    keys = [k for k, f in card.factors.items() if f.axis == axis]
    rows = len(next(iter(weights.values())))
    possible = sum((weights[k] for k in keys), np.zeros(rows))
    earned = sum((points[k] for k in keys), np.zeros(rows))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(possible > 0, earned / np.where(possible > 0, possible, 1.0), np.nan)


def score(
    card: CompiledScorecard,
    values: Mapping[str, Any],
    *,
    now: int = 0,
    exit_stage: bool | None = None,
    prior_gap_days: float = math.nan,
) -> tuple[float, str, dict[str, Any]]:
    """(score, state, contributions) of one customer from feature values as of ``now``;
    contributions add up to the score."""
    columns = {
        name: np.array([values.get(name)], dtype=object) for name in card.feature_set.features
    }
    inputs = HealthInputs(
        columns,
        np.array([now], dtype=np.int64),
        np.array([math.nan if exit_stage is None else float(exit_stage)]),
        prior_gap_days,
    )
    scores = score_columns(card, inputs)
    return float(scores.score[0]), str(scores.state[0]), contributions(scores, 0)


def contributions(scores: HealthScores, row: int) -> dict[str, Any]:
    """One row's factors as stored: value (None when missing), weight share and points."""
    return contributions_of(scores, [row])[0]


def contributions_of(scores: HealthScores, rows: Sequence[int]) -> list[dict[str, Any]]:
    """The stored factors of many rows, rounded column-wise (a loop of ``round`` per value
    cost more than all the scoring)."""
    picked = np.asarray(rows, dtype=np.int64)
    columns = {
        key: (
            [
                None if math.isnan(v) else v
                for v in np.round(scores.values[key][picked], 6).tolist()
            ],
            np.round(scores.weights[key][picked], 6).tolist(),
            np.round(scores.points[key][picked], 6).tolist(),
        )
        for key in scores.points
    }
    return [
        {key: {"value": v[i], "weight": w[i], "points": p[i]} for key, (v, w, p) in columns.items()}
        for i in range(len(picked))
    ]


def health_changes(
    card: CompiledScorecard, rows: list[dict[str, Any]], prior_gap_days: float = math.nan
) -> list[tuple[dict[str, Any], float, str, dict[str, Any]]]:
    """The rows (sorted by customer and time) where state or whole score changes, scored one
    by one as of each row's instant (stage unknown): the reading the engines are held to."""
    kept = []
    previous: tuple[Any, ...] | None = None
    for row in rows:
        total, state, parts = score(card, row, now=int(row["ts"]), prior_gap_days=prior_gap_days)
        key = (row["customer_id"], state, math.floor(total + 1e-9))
        if previous is None or key != previous:
            kept.append((row, total, state, parts))
        previous = key
    return kept
