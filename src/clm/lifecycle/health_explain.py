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

EXIT_REASON = "in an exit stage (churned): never counted as stable"


def factor_list(card: CompiledScorecard, parts: dict[str, Any]) -> list[FactorContribution]:
    """The stored or computed contributions as factors, the ones costing the most points
    first; factors the scorecard no longer has are left out."""
    factors = [
        FactorContribution(
            factor=key,
            label=card.factors[key].label or key,
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
    reasons = [reason(f) for f in losing[:3]]
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
        state_label=state_label(state, known),
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


def shown(value: Any) -> str:
    """A factor's value for people: 2.5, 3, 161 (days), 1,234, yes/no: two decimals below 10,
    one below 100, none above (546.4 days or 160.86 days read as noise)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        places = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
        text = f"{value:,.{places}f}"
        return text.rstrip("0").rstrip(".") if places else text
    return str(value)


def reason(factor: FactorContribution) -> str:
    return (
        f"{factor.label}: {shown(factor.value)} "
        f"(earns {factor.points:.0f} of {factor.weight:.0f} points)"
    )


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
    "last NPS score: 3 (-14 points)"; parts under one point are left out."""
    moves = sorted(
        (-abs(delta), key, delta)
        for key, delta in driver_parts(card, before, after).items()
        if abs(delta) >= 1.0
    )
    out = []
    for _, key, delta in moves[:top]:
        value = (after.get(key) or {}).get("value")
        label = card.factors[key].label or key
        what = "no data" if value is None else shown(value)
        out.append(f"{label}: {what} ({delta:+.0f} points)")
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
