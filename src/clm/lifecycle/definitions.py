"""Stage models as Python objects: the schema every YAML file is validated against.

A stage model lists stages in funnel order. Each stage has an entry ``rule`` over customer
features; exactly one stage is ``initial`` (where every customer with an event starts, and falls
back to when no other rule holds); stages marked ``exit`` (such as ``churned``) take precedence
over all others. ``lapses`` move a customer out of a stage after time passes.

Precedence, when several rules match at one instant:
1. the entry rules are tried in ``precedence`` order (default: exit stages in list order, then
   the other stages from the last to the first, then the initial stage); the first that holds
   gives the *entry stage*;
2. then, while a lapse *from* the current stage holds, the customer moves to its ``to`` stage
   (lapses form no cycle, so this ends); the last stage reached is the customer's stage.
The rule recorded for a transition is ``stage:<name>`` or ``lapse:<name>`` accordingly.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

Identifier = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=64)]
FeatureKind = Literal["count", "sum", "exists", "first_ts", "last_ts", "last", "days_since", "expr"]


class FeatureDefinition(BaseModel):
    """One feature, computed per customer as of any instant from their events.

    Aggregates (``count``, ``sum``, ``exists``, ``first_ts``, ``last_ts``, ``last``) look at
    the events named by ``event`` (any event when absent) that pass the ``where`` filter, over
    the last ``window_days`` days (all time when absent; ``count``/``sum``/``exists`` only).
    ``sum`` and ``last`` read ``field``: ``revenue``, ``name``, ``channel``, ... or
    ``properties.<key>``. ``days_since`` is the time since the ``first_ts``/``last_ts`` feature
    ``of``; ``expr`` combines other features.
    """

    model_config = ConfigDict(extra="forbid")

    kind: FeatureKind
    event: str | list[str] | None = None
    where: str | None = None
    window_days: PositiveInt | None = None
    field: str | None = None
    value_type: Literal["number", "string"] = "number"
    of: str | None = None
    expr: str | None = None
    description: str = ""


class StageDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Identifier
    rule: str | None = None
    initial: bool = False
    exit: bool = False
    description: str = ""


class LapseDefinition(BaseModel):
    """Leave stage ``from`` for stage ``to`` once ``when`` holds (usually a days_since test)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: Identifier | None = None
    source: Identifier = Field(alias="from")
    to: Identifier
    when: str


class StageModel(BaseModel):
    """A named, versioned lifecycle definition; one workspace may hold several (one per brand)."""

    model_config = ConfigDict(extra="forbid")

    name: Identifier
    version: PositiveInt = 1
    description: str = ""
    parameters: dict[Identifier, float | int | str] = Field(default_factory=dict)
    features: dict[Identifier, FeatureDefinition] = Field(default_factory=dict)
    stages: Annotated[list[StageDefinition], Field(min_length=1)]
    lapses: list[LapseDefinition] = Field(default_factory=list)
    precedence: list[Identifier] | None = None


class Factor(BaseModel):
    """One line of a health scorecard: an input mapped linearly onto 0..1, times a weight.

    ``kind`` says what the factor reads:

    * ``feature`` (the default): the feature ``feature``. ``best`` is the value worth the full
      weight, ``worst`` the value worth nothing; values in between are interpolated and values
      beyond are clipped. ``transform: sentiment`` reads a text feature (a survey comment) as
      its VADER compound sentiment, from -1 (negative) to 1 (positive).
    * ``cadence``: silence measured against the customer's own rhythm: days since the last
      purchase divided by their typical gap between purchases. The typical gap is their own
      mean gap shrunk towards the population's (pooled over the repeat buyers scored at the
      same instant) by ``prior_gaps`` pseudo-gaps; a one-time buyer gets the population's.
      Reads the features ``first_purchase``, ``last_purchase`` and ``purchase_count``.
    * ``stage``: 1 in any stage but an exit stage (``churned``), 0 in an exit stage. A customer
      in an exit stage is never "happy and stable", whatever the score.

    Missing input is explicit: when the value is unknown, or ``evidence`` (a feature) is 0,
    false or unknown, the factor is ``missing``: ``skip`` (the default) leaves it out and the
    other factors' weights are re-normalised so the score still runs 0..100; a number 0..1 is
    a stated prior (that share of the weight). ``decay_days`` halves the factor's weight every
    that many days since the timestamp feature ``decay_from`` (an old frontline rating counts
    less than a fresh one). ``action`` is the next step suggested when this factor is the
    customer's main problem.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["feature", "cadence", "stage"] = "feature"
    feature: Identifier | None = None
    axis: Literal["sentiment", "risk"]
    weight: Annotated[float, Field(gt=0)]
    best: float = 1.0
    worst: float = 0.0
    missing: Annotated[float, Field(ge=0, le=1)] | Literal["skip"] = "skip"
    evidence: Identifier | None = None
    decay_days: Annotated[float, Field(gt=0)] | None = None
    decay_from: Identifier | None = None
    prior_gaps: Annotated[float, Field(ge=0)] = 2.0
    transform: Literal["sentiment"] | None = None
    label: str = ""
    action: str = ""


class Scorecard(BaseModel):
    """A health scorecard: weighted factors on two axes, and the state thresholds.

    States: ``unhappy`` when the sentiment share is below ``unhappy_below`` (0..1 of the
    sentiment weights present), else ``at_risk`` ("happy but at risk") when the risk share is
    below ``at_risk_below`` or the customer is in an exit stage, else ``happy`` ("happy and
    stable"). No sentiment evidence at all is not unhappiness; no risk evidence at all is not
    stability (at risk). The score is the sum of the factor contributions (0..100).
    ``actions`` holds the suggested next step per state when no factor names its own.
    """

    model_config = ConfigDict(extra="forbid")

    name: Identifier
    version: PositiveInt = 1
    description: str = ""
    features: dict[Identifier, FeatureDefinition] = Field(default_factory=dict)
    factors: dict[Identifier, Factor]
    unhappy_below: Annotated[float, Field(ge=0, le=1)] = 0.5
    at_risk_below: Annotated[float, Field(ge=0, le=1)] = 0.5
    actions: dict[Literal["happy", "at_risk", "unhappy"], str] = Field(default_factory=dict)
