"""Health: a transparent 0-100 score from a scorecard, its state, and the reasons.

Each factor maps one feature linearly from ``worst`` (0 points) to ``best`` (its full weight),
clipped; weights are scaled to add up to 100, so the factor contributions add up to the score.
The state: ``unhappy`` when the sentiment factors earn less than ``unhappy_below`` of their
points; else ``at_risk`` when the risk factors earn less than ``at_risk_below`` of theirs; else
``happy``. Features are computed by the engines (the same plan as stages); the score is
arithmetic on them, done here so that the contributions and the score can never disagree.
History keeps a row whenever the state or the whole-number part of the score changes, at each
instant a feature can change. Features that grow with time alone (days since the last
purchase) are sampled at those instants; ``health_now`` computes the present exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from clm.lifecycle.definitions import Factor, Scorecard
from clm.lifecycle.features import DAY, DefinitionError, FeatureSet, Problem, compile_features

STATES = ("happy", "at_risk", "unhappy")
STATE_LABELS = {
    "happy": "happy and stable",
    "at_risk": "happy but at risk",
    "unhappy": "unhappy",
}


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
    weights: dict[str, float]  # scaled to add up to 100
    feature_set: FeatureSet
    unhappy_below: float
    at_risk_below: float
    definition: Scorecard


def compile_scorecard(card: Scorecard) -> CompiledScorecard:
    wanted = {f.feature for f in card.factors.values()}
    feature_set, scope = compile_features(wanted, card.features, {})
    problems = []
    for key, factor in card.factors.items():
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


def factor_value(card: CompiledScorecard, factor: Factor, raw: Any) -> float | None:
    """The value a factor reads: days features in days, true/false as 1/0."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    if factor.transform == "sentiment":
        return sentiment(raw) if isinstance(raw, str) and raw.strip() else None
    if card.feature_set.features[factor.feature].type == "days":
        return float(raw) / DAY
    return float(raw)


def score(card: CompiledScorecard, values: Mapping[str, Any]) -> tuple[float, str, dict[str, Any]]:
    """(score, state, contributions) from feature values; contributions add up to the score."""
    contributions: dict[str, Any] = {}
    earned = {"sentiment": 0.0, "risk": 0.0}
    possible = {"sentiment": 0.0, "risk": 0.0}
    for key, factor in card.factors.items():
        value = factor_value(card, factor, values.get(factor.feature))
        if value is None:
            fraction = factor.missing
        else:
            fraction = (value - factor.worst) / (factor.best - factor.worst)
            fraction = min(1.0, max(0.0, fraction))
        points = card.weights[key] * fraction
        earned[factor.axis] += points
        possible[factor.axis] += card.weights[key]
        contributions[key] = {"value": value, "points": points}
    total = sum(c["points"] for c in contributions.values())
    return total, _state(card, earned, possible), contributions


def _state(card: CompiledScorecard, earned: dict[str, float], possible: dict[str, float]) -> str:
    def share(axis: str) -> float:
        return earned[axis] / possible[axis] if possible[axis] else 1.0

    if share("sentiment") < card.unhappy_below:
        return "unhappy"
    return "at_risk" if share("risk") < card.at_risk_below else "happy"


def health_changes(
    card: CompiledScorecard, rows: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], float, str, dict[str, Any]]]:
    """The rows (sorted by customer and time) where state or whole score changes."""
    kept = []
    previous: tuple[Any, ...] | None = None
    for row in rows:
        total, state, contributions = score(card, row)
        key = (row["customer_id"], state, math.floor(total + 1e-9))
        if previous is None or key != previous:
            kept.append((row, total, state, contributions))
        previous = key
    return kept
