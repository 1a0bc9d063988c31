"""What the lifecycle hands to callers (Python API, CLI, HTTP): plain pydantic models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class DefinitionInfo(BaseModel):
    """One stored version of a stage model or scorecard."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    name: str
    version: int
    active: bool
    created_at: datetime
    # Set when this version was just applied: the definition that was active until then.
    replaced: DefinitionInfo | None = None


class TransitionPublic(BaseModel):
    """One stage change: when, from where to where, the rule that fired and what caused it."""

    customer_id: int
    at: datetime
    ts: int
    from_stage: str | None
    to_stage: str
    kind: str
    rule: str
    cause_message_id: str | None
    cause: str  # "event" or "time" (a lapse or a window closing)


class StageAt(BaseModel):
    customer_id: int
    stage: str
    since: datetime
    rule: str
    model: str
    model_version: int


class RunResult(BaseModel):
    """What a run did: how many customers it looked at and transitions it stored."""

    mode: str
    model: str
    model_version: int
    engine: str
    customers: int
    transitions: int
    events_written: int
    last_event_id: int
    seconds: float


class TransitionPage(BaseModel):
    items: list[TransitionPublic]
    total: int
    limit: int
    offset: int


class FactorContribution(BaseModel):
    factor: str
    label: str
    axis: str
    value: Any
    points: float
    weight: float  # its share of the score after re-normalisation; 0 when left out
    missing: bool = False  # no data: left out (or scored at the scorecard's stated prior)


class HealthPublic(BaseModel):
    """A customer's health: the score, its state, and the factors behind it, largest first."""

    customer_id: int
    at: datetime
    score: float
    state: str  # happy | at_risk | unhappy
    # "happy and stable" | "happy but at risk" | "unhappy", the same names everywhere;
    # ``sentiment_known`` false says no feedback backs "happy" (the 360 says so beside it)
    state_label: str
    sentiment_known: bool = True  # some sentiment factor (survey, rating, ticket...) has data
    factors: list[FactorContribution]
    reasons: list[str] = []  # the factors costing the most points, in words
    next_action: str = ""  # what to do next, from the state or the main problem


class HealthChange(BaseModel):
    """One stored change of a customer's health, and what moved it: ``drivers`` are the
    factors whose points changed most since the previous change, in words
    ("Last NPS score: 3 of 10 (\u221220 points)"); empty for the first score."""

    at: datetime
    score: float
    state: str
    state_label: str
    cause_message_id: str | None
    from_score: float | None = None
    from_state: str | None = None
    from_state_label: str | None = None
    drivers: list[str] = []


class CustomerLifecycle(BaseModel):
    """Everything the lifecycle knows of one customer: stage, health, reasons, history."""

    customer_id: int
    at: datetime  # the moment the stage and health describe (now, unless asked for another)
    stage: StageAt | None
    features: dict[str, Any]
    stage_history: list[TransitionPublic]
    health: HealthPublic | None
    health_history: list[HealthChange]


class Preview(BaseModel):
    """What applying a stage model would do, before applying it."""

    model: str
    customers: int
    counts: dict[str, int]
    # The model's stage order, which ``counts`` cannot carry: a preview runs as a job whose
    # result PostgreSQL keeps as jsonb, and jsonb orders an object's keys by their length.
    stages: list[str] = []
    transitions: int
    sample: list[TransitionPublic]
