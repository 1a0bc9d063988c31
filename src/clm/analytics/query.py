"""Report parameters: validated once at the edge, resolved against the log and the stage model.

Every report takes a ``ReportQuery`` (or a subclass with its own fields). Unknown parameters,
invalid dates, ``since >= until`` and unknown stages or segments raise
``clm.errors.ValidationError`` with one ``FieldError`` per problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from clm.analytics.calendar import Granularity
from clm.analytics.segments import rfm_scores
from clm.analytics.source import ReportSource, by_customer
from clm.errors import FieldError, ValidationError
from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.conditions import RFM_SEGMENTS

SEGMENTS = RFM_SEGMENTS
Q = TypeVar("Q", bound="ReportQuery")


class ReportQuery(BaseModel):
    """The period and the filters every report accepts.

    ``since``/``until`` bound the period ``[since, until)`` (default: the customers' whole log,
    up to just after their last event; what CLM wrote itself, such as today's sends, does not
    stretch it: ``ReportSource.bounds``). ``stage`` keeps customers in that stage at ``until``;
    ``segment`` those in that RFM segment at ``until``; ``saved_segment`` the current members
    of that saved segment (by name; ``run_report`` looks them up); ``channel``/``campaign``
    those with a touchpoint on it in the period.
    """

    model_config = ConfigDict(extra="forbid")

    since: datetime | None = None
    until: datetime | None = None
    stage: str | None = None
    segment: str | None = None
    saved_segment: str | None = Field(default=None, min_length=1, max_length=100)
    channel: str | None = None
    campaign: str | None = None
    _members: tuple[int, ...] | None = PrivateAttr(default=None)

    def with_members(self: Q, members: Sequence[int]) -> Q:
        """This query with the saved segment's members resolved (by the caller, who has the
        database: the report engines may not)."""
        resolved = self.model_copy()
        resolved._members = tuple(members)
        return resolved

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @field_validator("segment")
    @classmethod
    def _known_segment(cls, value: str | None) -> str | None:
        if value is not None and value not in SEGMENTS:
            raise ValueError(f"unknown segment; one of: {', '.join(SEGMENTS)}")
        return value


class PeriodQuery(ReportQuery):
    granularity: Granularity = "month"


class FunnelQuery(ReportQuery):
    at: datetime | None = Field(
        default=None, description="date of the stage counts (default: until)"
    )


class RetentionQuery(PeriodQuery):
    at_risk_below: float = Field(
        default=0.5, ge=0, le=1, description="P(alive) threshold where no health state"
    )


class CohortQuery(ReportQuery):
    cohort_by: Literal["acquisition", "first_purchase"] = "acquisition"
    max_age: int = Field(default=24, ge=1, le=240, description="months since cohort start")
    returning_event: str = Field(
        default="Order Completed", min_length=1, max_length=200,
        description="the event that makes a customer active in a month ('any' = any activity)",
    )  # fmt: skip


class AttributionQuery(ReportQuery):
    from_stage: str | None = None
    to_stage: str | None = None
    dimension: Literal["channel", "campaign", "type"] = "channel"
    lookback_days: float = Field(default=30, gt=0)
    half_life_days: float = Field(default=7, gt=0)
    max_shapley_channels: int = Field(default=12, ge=1, le=16)


class AcquisitionQuery(ReportQuery):
    """``since``/``until`` are the acquisition window (customers whose first purchase is in
    it, and the spend in it); ``value_until`` ends the value horizon: CLV is each customer's
    latest score before it and payback counts revenue up to it (default: the whole log), so
    one quarter's new customers can be valued with what is known later."""

    dimension: Literal["channel", "campaign"] = "channel"
    value_until: datetime | None = None

    @field_validator("value_until")
    @classmethod
    def _utc_value(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _horizon_after_window(self) -> AcquisitionQuery:
        if self.value_until and self.until and self.value_until < self.until:
            raise ValueError("value_until must not be before until")
        return self


class FeedbackQuery(PeriodQuery):
    pass


def parse_query(kind: type[Q], params: Mapping[str, Any]) -> Q:
    """Validate raw parameters (from HTTP or the CLI) into a query, or raise ValidationError."""
    try:
        return kind.model_validate(dict(params))
    except pydantic.ValidationError as exc:
        errors = [
            FieldError(
                tuple(err["loc"]),
                "unknown report parameter" if err["type"] == "extra_forbidden" else err["msg"],
                err["type"],
            )
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise ValidationError("Invalid report parameters", errors) from exc


@dataclass(frozen=True)
class Period:
    """``[since, until)`` in epoch seconds."""

    since: int
    until: int


def resolve_period(source: ReportSource, query: ReportQuery) -> Period:
    """The query's period, defaulting to the customers' events; checks stages named in it."""
    check_stages(source.model, query)
    bounds = source.bounds()
    until = int(query.until.timestamp()) if query.until else (bounds[1] + 1 if bounds else 1)
    since = int(query.since.timestamp()) if query.since else (bounds[0] if bounds else 0)
    if query.since is None and since >= until:
        since = until - 1
    if since >= until:
        raise ValidationError(
            "Invalid period", [FieldError(("since",), "must be before until", "value_error")]
        )
    return Period(since, until)


STAGE_FIELDS = ("stage", "from_stage", "to_stage")  # the parameters that name a stage


def check_stages(model: CompiledModel, query: ReportQuery) -> None:
    """Refuse a query naming a stage the stage model does not have (one error per field)."""
    known = [s.name for s in model.stages]
    errors = [
        FieldError((name,), f"unknown stage {value!r}; stages: {', '.join(known)}")
        for name in STAGE_FIELDS
        if (value := getattr(query, name, None)) is not None and value not in known
    ]
    if errors:
        raise ValidationError("Unknown stage", errors)


def latest_stage(transitions: ir.Table, at: int) -> ir.Table:
    """``customer_id, stage``: each customer's stage just before ``at``.

    One grouped pass (a customer never has two transitions at the same instant, so the stage
    with the latest ``ts`` is well defined). ``arg_max`` must stay the only aggregate here, and
    unfiltered: SQLite spells it with a bare column beside ``max(ts)``, which takes its value
    from the row of the maximum only when that is the query's single ``min``/``max``.
    """
    t = transitions.filter(unindexed(transitions.ts) < at)
    return t.group_by("customer_id").aggregate(stage=t.to_stage.argmax(t.ts))


def unindexed(ts: ir.IntegerValue) -> ir.IntegerValue:
    """``ts`` in a condition that SQLite must not answer with its ``(definition_id, ts)``
    index: for a latest-per-customer group-by it then walks the ``(definition_id,
    customer_id, ts)`` index in order instead of sorting every row it found by time into a
    temporary B-tree (stage history and health on the demo: 3-4x less CPU). Other engines
    read the same rows either way."""
    return ts + 0


def customer_filter(source: ReportSource, query: ReportQuery, period: Period) -> ir.Table | None:
    """The customers the filters keep (a one-column table), or None when nothing filters."""
    selected: list[ir.Table] = []
    if query.stage is not None:
        stages = latest_stage(source.transitions, period.until)
        selected.append(stages.filter(stages.stage == query.stage).select("customer_id"))
    if query.segment is not None:
        scores = rfm_scores(source.events, period.until)
        selected.append(scores.filter(scores.segment == query.segment).select("customer_id"))
    if query.saved_segment is not None:
        if query._members is None:
            raise ValueError("saved_segment's members were not resolved (run_report does)")
        members = ibis.memtable(pa.table({"customer_id": pa.array(query._members, pa.int64())}))
        selected.append(members)
    for column in ("channel", "campaign"):
        value = getattr(query, column)
        if value is not None:
            e = source.events
            hits = e.filter(
                e[column] == value, e.ts >= period.since, e.ts < period.until, by_customer(e)
            )
            selected.append(hits.select("customer_id").distinct())
    if not selected:
        return None
    result = selected[0]
    for other in selected[1:]:
        result = result.filter(result.customer_id.isin(other.customer_id))
    return result


def flag(condition: ir.BooleanValue) -> ir.IntegerValue:
    """1 or 0 (PostgreSQL cannot cast a boolean to BIGINT)."""
    return ibis.ifelse(condition, 1, 0).cast("int64")


def restrict(table: ir.Table, customers: ir.Table | None) -> ir.Table:
    if customers is None:
        return table
    return table.filter(table.customer_id.isin(customers.customer_id))


def filtered(source: ReportSource, query: ReportQuery, period: Period) -> tuple[ir.Table, ir.Table]:
    """(events, transitions) restricted to the customers the query's filters keep."""
    customers = customer_filter(source, query, period)
    return restrict(source.events, customers), restrict(source.transitions, customers)


def iso(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 6) if denominator else None
