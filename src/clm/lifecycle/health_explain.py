"""A health score in words: its factors, reasons, suggested action, and what moved it.

The same explanation serves a score computed now (``health_service.explain``), the stored
current score (``health_stored``: what the customer 360 shows, kept current by the live loop,
so reading it costs one indexed row instead of re-scoring from workspace-wide inputs) and each
stored change of the history (``drivers``: the factors whose points moved most).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from clm.lifecycle.health import CompiledScorecard, state_label
from clm.lifecycle.health_inputs import get_scorecard
from clm.lifecycle.schemas import FactorContribution, HealthPublic
from clm.store.engine import Database
from clm.store.models import Customer, HealthScore

EXIT_REASON = "Churned (exit stage): never counted as happy and stable"


def factor_list(card: CompiledScorecard, parts: dict[str, Any]) -> list[FactorContribution]:
    """The stored or computed contributions as factors, the ones costing the most points
    first; factors the scorecard no longer has are left out."""
    factors = [
        FactorContribution(
            factor=key,
            label=factor_label(card, key),
            axis=card.factors[key].axis,
            value=c.get("value"),
            points=round(float(c.get("points") or 0.0), 2),
            weight=round(float(c.get("weight") or 0.0), 2),
            missing=c.get("value") is None,
        )
        for key, c in parts.items()
        if key in card.factors
    ]
    factors.sort(key=lambda f: (f.points - f.weight, f.factor))
    return factors


def explain_parts(
    card: CompiledScorecard,
    customer_id: int,
    at: datetime,
    total: float,
    state: str,
    parts: dict[str, Any],
    *,
    exit_stage: bool | None = None,
) -> HealthPublic:
    """Score, state and factors, the top reasons and the suggested next action."""
    factors = factor_list(card, parts)
    losing = [f for f in factors if f.weight - f.points >= 0.5]
    reasons = [reason(card, f) for f in losing[:3]]
    if exit_stage:
        reasons.insert(0, EXIT_REASON)
    action = card.action(state)
    if state != "happy" and losing:
        action = card.factors[losing[0].factor].action or action
    known = sentiment_known(card, parts)
    return HealthPublic(
        customer_id=customer_id,
        at=at,
        score=round(total, 2),
        state=state,
        state_label=state_label(state),
        sentiment_known=known,
        factors=factors,
        reasons=reasons[:3],
        next_action=action,
    )


def sentiment_known(card: CompiledScorecard, parts: dict[str, Any]) -> bool:
    """Whether any sentiment factor (survey, rating, ticket...) has data in these parts."""
    return any(
        f.axis == "sentiment" and (parts.get(key) or {}).get("value") is not None
        for key, f in card.factors.items()
    )


MINUS = "\u2212"  # a typographic minus sign, as the web's format helpers print


def shown(value: Any) -> str:
    """A number for people: 2.5, 3, 161, 1,234, \u22120.6, yes/no: one decimal below 10, none
    above (7.92 or 160.86 read as noise)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        text = f"{value:,.{1 if abs(value) < 10 else 0}f}"
        text = text.removesuffix(".0")
        return "0" if text == "-0" else text.replace("-", MINUS)
    return str(value)


def signed_points(delta: float) -> str:
    """A move in points with its sign: "\u221211 points", "+5 points", "1 point"."""
    whole = round(delta)
    sign = MINUS if whole < 0 else "+" if whole > 0 else ""
    return f"{sign}{abs(whole)} {'point' if abs(whole) == 1 else 'points'}"


def _count(value: float, one: str, many: str) -> str:
    whole = round(value)
    return f"{whole:,} {one if whole == 1 else many}"


# How a feature's value reads, with its unit: what a customer-success manager would write.
_OUT_OF = {"last_nps": 10, "last_csat": 5, "frontline_rating": 5}
_COUNTS = {
    "purchases_365d": ("purchase", "purchases"),
    "failed_payments_90d": ("failed payment", "failed payments"),
    "downgrades_90d": ("downgrade", "downgrades"),
    "open_tickets": ("open ticket", "open tickets"),
    "complaints_90d": ("complaint", "complaints"),
    "refunds_90d": ("refund", "refunds"),
}
_SHARES = {"p_alive": "likely to buy again", "engagement_trend": "of their usual activity"}


def value_words(card: CompiledScorecard, key: str, value: Any) -> str:
    """A factor's value in words with its unit: "churned (exit stage)", "161 days",
    "3 of 10", "2 failed payments", "40% likely to buy again"; rounded for people."""
    factor = card.factors[key]
    if value is None:
        return "no data"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return shown(value)
    number = float(value)
    if math.isnan(number):
        return "no data"
    if factor.kind == "stage":  # the factor reads 1 - (in an exit stage)
        return "churned (exit stage)" if number < 0.5 else "active"
    if factor.kind == "cadence":
        return f"silent for {shown(number)}\u00d7 their usual gap between purchases"
    if factor.transform == "sentiment":
        tone = "positive" if number >= 0.05 else "negative" if number <= -0.05 else "neutral"
        return f"{tone} ({shown(number)})"
    feature = factor.feature or ""
    if feature in _OUT_OF:
        return f"{shown(number)} of {_OUT_OF[feature]}"
    if feature in _COUNTS:
        return _count(number, *_COUNTS[feature])
    if feature in _SHARES:
        return f"{round(100 * number)}% {_SHARES[feature]}"
    declared = card.feature_set.features.get(feature)
    if declared is not None and declared.type == "days":
        return _count(number, "day", "days")
    return shown(number)


def factor_label(card: CompiledScorecard, key: str) -> str:
    """A factor's name as a sentence starts: "Days since last purchase"."""
    label = card.factors[key].label or key.replace("_", " ")
    return label[:1].upper() + label[1:]


def reason(card: CompiledScorecard, factor: FactorContribution) -> str:
    """What a factor costs the score: "Stage: churned (exit stage) (\u221211 points)"."""
    return (
        f"{factor_label(card, factor.factor)}: "
        f"{value_words(card, factor.factor, factor.value)} "
        f"({signed_points(factor.points - factor.weight)})"
    )


def losing_reasons(card: CompiledScorecard, parts: dict[str, Any], top: int = 3) -> list[str]:
    """The factors costing the most points (half a point or more), in words."""
    losing = [f for f in factor_list(card, parts) if f.weight - f.points >= 0.5]
    return [reason(card, f) for f in losing[:top]]


def driver_parts(
    card: CompiledScorecard, before: dict[str, Any], after: dict[str, Any]
) -> dict[str, float]:
    """Each factor's part of the move between two scores: the change in its points less the
    change in its weight valued at the old score's rate (old score / 100). A factor that newly
    has data is credited with how far it stands above or below the old score, one whose weight
    merely re-normalised with nothing else changed with (almost) nothing; since the weights add
    up to 100 both times, the parts add up to the move exactly."""

    def number(part: dict[str, Any], name: str) -> float:
        return float(part.get(name) or 0.0)

    rate = sum(number(p or {}, "points") for p in before.values()) / 100.0
    parts = {}
    for key in after.keys() | before.keys():
        if key not in card.factors:
            continue
        now, then = after.get(key) or {}, before.get(key) or {}
        points = number(now, "points") - number(then, "points")
        weight = number(now, "weight") - number(then, "weight")
        parts[key] = points - weight * rate
    return parts


def drivers(
    card: CompiledScorecard, before: dict[str, Any], after: dict[str, Any], top: int = 2
) -> list[str]:
    """The factors that moved the score most between two scores (``driver_parts``), in words:
    "Last NPS score: 3 of 10 (\u221214 points)"; parts under one point are left out."""
    moves = sorted(
        (-abs(delta), key, delta)
        for key, delta in driver_parts(card, before, after).items()
        if abs(delta) >= 1.0
    )
    out = []
    for _, key, delta in moves[:top]:
        what = value_words(card, key, (after.get(key) or {}).get("value"))
        out.append(f"{factor_label(card, key)}: {what} ({signed_points(delta)})")
    return out


def _live_id(db: Database, workspace_id: int, customer_id: int) -> int:
    with db.session() as session:
        for _ in range(32):
            merged = session.scalar(
                select(Customer.merged_into_id).where(
                    Customer.id == customer_id, Customer.workspace_id == workspace_id
                )
            )
            if merged is None:
                break
            customer_id = merged
    return customer_id


def health_stored(
    db: Database, workspace_id: int, customer_id: int, now: datetime | None = None
) -> HealthPublic | None:
    """The stored current health of a customer with its reasons (None: never scored).

    ``at`` is ``now`` while the score holds (its ``next_due`` is later or never: time alone
    has not moved it by a whole point), else the instant it was scored, so a lagging live loop
    shows as "as of" instead of passing an old score off as today's."""
    definition_id, card = get_scorecard(db, workspace_id)
    live = _live_id(db, workspace_id, customer_id)
    with db.session() as session:
        row = session.get(HealthScore, (definition_id, live))
        if row is None or row.workspace_id != workspace_id:
            return None
        scored_at, total, state = row.scored_at, row.score, row.state
        parts, due = dict(row.contributions or {}), row.next_due
    when = now or datetime.now(UTC)
    holds = due is None or due > when.timestamp()
    at = when if holds else datetime.fromtimestamp(scored_at, UTC)
    exit_stage = None
    for key, factor in card.factors.items():
        value = (parts.get(key) or {}).get("value")
        if factor.kind == "stage" and value is not None and not math.isnan(float(value)):
            exit_stage = float(value) == 0.0  # the stage factor reads 1 - (in an exit stage)
    return explain_parts(card, live, at, total, state, parts, exit_stage=exit_stage)
