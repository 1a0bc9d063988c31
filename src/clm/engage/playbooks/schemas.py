"""Playbooks at the edge: a trigger, steps, a goal and a holdout, in YAML or JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clm.engage.schemas import Channel, Content, MessageCategory, Purpose, commercial_is_marketing
from clm.lifecycle.conditions import Condition, condition_errors

StepId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class Trigger(_Strict):
    """When a customer enters: a stage change, a health change, an event, a date, a schedule,
    or entering a segment: a saved one (``segment``, by name) or inline ``conditions`` (in
    the condition language of ``clm.lifecycle.conditions``), met now and not at the last tick."""

    type: Literal["stage_changed", "health_changed", "event", "date", "schedule", "segment_entered"]
    to: str | None = None  # stage_changed: the stage entered; health_changed: the state
    from_: Annotated[str | None, Field(alias="from")] = None
    event: str | None = None
    where: dict[str, Any] = Field(default_factory=dict)  # event properties, equality
    trait: str | None = None  # date: a trait holding a date (birthday, renewal_date)
    offset_days: Annotated[int, Field(ge=-36_500, le=36_500)] = 0  # date: -30 = thirty days before
    yearly: bool = False  # date: match month and day only (birthdays)
    every_days: Annotated[int, Field(ge=1, le=36_500)] = 30  # schedule
    conditions: list[Condition] = Field(default_factory=list)
    segment: Annotated[str | None, Field(min_length=1, max_length=100)] = None  # a saved segment

    @model_validator(mode="after")
    def _needs(self) -> Trigger:
        if self.type == "event" and not self.event:
            raise ValueError("an event trigger needs 'event'")
        if self.type == "date" and not self.trait:
            raise ValueError("a date trigger needs 'trait'")
        if self.type == "segment_entered":
            self._segment_needs()
        if self.type == "health_changed" and not self.to:
            raise ValueError("a health trigger needs 'to' (happy, at_risk, unhappy)")
        return self

    def _segment_needs(self) -> None:
        if self.segment and self.conditions:
            raise ValueError("a segment trigger takes 'segment' or 'conditions', not both")
        if not self.segment and not self.conditions:
            raise ValueError(
                "a segment trigger needs 'segment' (a saved segment's name) or 'conditions'"
            )
        problems = condition_errors(self.conditions)
        if problems:
            raise ValueError("; ".join(f"condition {p.loc[-1]}: {p.message}" for p in problems))

    @property
    def event_name(self) -> str | None:
        if self.type == "stage_changed":
            return "lifecycle_stage_changed"
        return self.event if self.type == "event" else None


class Step(_Strict):
    id: StepId
    type: Literal["send", "wait", "wait_until", "branch", "split", "task", "update", "exit"]
    # send
    channel: Channel = "email"
    category: MessageCategory = "other"
    purpose: Purpose = "marketing"
    content: Content | None = None
    # wait / wait_until
    days: Annotated[float, Field(ge=0, le=36_500)] = 0
    hours: Annotated[float, Field(ge=0, le=876_000)] = 0
    event: str | None = None
    on_timeout: str | None = None  # a step id, or "exit"
    # branch
    conditions: list[Condition] = Field(default_factory=list)
    then: str | None = None
    otherwise: Annotated[str | None, Field(alias="else")] = None
    # split
    variants: dict[str, float] = Field(default_factory=dict)
    goto: dict[str, str] = Field(default_factory=dict)
    # task
    title: str | None = None
    owner: str | None = None
    # update
    traits: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None

    @model_validator(mode="after")
    def _needs(self) -> Step:
        if self.type == "send" and self.content is None:
            raise ValueError("a send step needs 'content'")
        commercial_is_marketing(self.category, self.purpose)
        if self.type == "wait_until" and not self.event:
            raise ValueError("a wait_until step needs 'event'")
        if self.type == "split" and (not self.variants or sum(self.variants.values()) <= 0):
            raise ValueError("a split step needs 'variants' with positive weights")
        if self.type == "task" and not self.title:
            raise ValueError("a task step needs 'title'")
        return self


class Goal(_Strict):
    stage: str | None = None
    event: str | None = None
    within_days: Annotated[int, Field(ge=1, le=36_500)] = 30


class PlaybookDefinition(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    description: str = ""
    trigger: Trigger
    steps: Annotated[list[Step], Field(min_length=1)]
    goal: Goal | None = None
    holdout: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    reentry: bool = False

    @model_validator(mode="after")
    def _step_references(self) -> PlaybookDefinition:
        ids = [s.id for s in self.steps]
        if len(set(ids)) != len(ids):
            raise ValueError("step ids must be unique")
        known = {*ids, "exit"}
        for step in self.steps:
            targets = [step.then, step.otherwise, step.on_timeout, *step.goto.values()]
            for target in targets:
                if target is not None and target not in known:
                    raise ValueError(f"step {step.id!r} points at unknown step {target!r}")
            if step.type == "split" and set(step.goto) - set(step.variants):
                raise ValueError(f"step {step.id!r}: goto names a variant it does not have")
        return self

    def index(self, step_id: str) -> int:
        return len(self.steps) if step_id == "exit" else [s.id for s in self.steps].index(step_id)


class PlaybookPublic(BaseModel):
    id: int
    name: str
    version: int
    status: str
    created_at: datetime
    definition: dict[str, Any]


class ArmResult(BaseModel):
    enrolled: int
    reached_goal: int
    rate: float


class PlaybookReport(BaseModel):
    """Uplift on the goal of the treated over the holdout, with a 95% confidence interval."""

    name: str
    goal: str | None
    treatment: ArmResult
    control: ArmResult
    uplift: float | None
    ci_low: float | None
    ci_high: float | None
    variants: dict[str, ArmResult]
    states: dict[str, int]


class JourneyStepPublic(BaseModel):
    step: str
    action: str
    detail: str
    at: datetime


class JourneyPublic(BaseModel):
    id: int
    playbook: str
    version: int
    arm: str
    variant: str | None
    state: str
    current_step: str | None
    enrolled_at: datetime
    wake_at: datetime | None
    history: list[JourneyStepPublic]
