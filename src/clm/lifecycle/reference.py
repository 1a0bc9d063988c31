"""The pure-Python reference: a direct reading of the definitions, small and slow on purpose.

Every engine must give exactly these answers. Features are recomputed from scratch at every
instant that could change a stage (each event time, each time an event leaves a window, each
lapse deadline after every matching event), so nothing here depends on clever pruning.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.expressions import evaluate, typed
from clm.lifecycle.features import Feature, FeatureSet

FIELD_NAMES = ("name", "type", "channel", "campaign", "source", "revenue")


@dataclass(frozen=True)
class LogEvent:
    """One event of the log as the lifecycle sees it (already resolved to its customer)."""

    customer_id: int
    ts: int
    message_id: str
    name: str | None = None
    type: str = "track"
    channel: str | None = None
    campaign: str | None = None
    source: str | None = None
    revenue: float | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in FIELD_NAMES}


@dataclass(frozen=True)
class Transition:
    """A change of stage: at ``ts`` the customer moved ``from_stage`` -> ``to_stage``."""

    customer_id: int
    ts: int
    from_stage: str | None
    to_stage: str
    rule: str
    cause_message_id: str | None


def typed_value(event: LogEvent, target: str, want: str) -> Any:
    """An event field or property, or None when it is missing or of another type."""
    if target.startswith("properties."):
        return typed(event.properties.get(target.removeprefix("properties.")), want)
    return typed(getattr(event, target), want)


def matches(feature: Feature, event: LogEvent) -> bool:
    if feature.events and event.name not in feature.events:
        return False
    if feature.where is None:
        return True
    return evaluate(feature.where, event.fields(), event.properties) is True


def feature_values(
    features: Mapping[str, Feature], events: Sequence[LogEvent], t: int
) -> dict[str, Any]:
    """Every feature of one customer as of instant ``t`` (events sorted by time)."""
    past = [e for e in events if e.ts <= t]
    values: dict[str, Any] = {}
    for name, feature in features.items():
        values[name] = _value(feature, past, values, t)
    return values


def _value(feature: Feature, past: list[LogEvent], values: dict[str, Any], t: int) -> Any:
    if feature.kind == "expr":
        assert feature.expr is not None
        return evaluate(feature.expr, values)
    if feature.kind == "days_since":
        ref = values[feature.of or ""]
        return None if ref is None else t - ref
    hits = [e for e in past if matches(feature, e)]
    if feature.window:
        hits = [e for e in hits if e.ts > t - feature.window]
    if feature.kind == "count":
        return len(hits)
    if feature.kind == "exists":
        return bool(hits)
    if feature.kind == "sum":
        return sum(typed_value(e, feature.field or "", "number") or 0.0 for e in hits)
    if not hits:
        return None
    if feature.kind == "first_ts":
        return min(e.ts for e in hits)
    last_ts = max(e.ts for e in hits)
    if feature.kind == "last_ts":
        return last_ts
    # "last": the value of the latest matching event; ties at one instant take the largest.
    candidates = [typed_value(e, feature.field or "", feature.type) for e in hits]
    known = [v for e, v in zip(hits, candidates, strict=True) if e.ts == last_ts and v is not None]
    return max(known) if known else None


def stage_at(model: CompiledModel, values: Mapping[str, Any]) -> tuple[str, str]:
    """(stage, rule) given the feature values: precedence first, then lapses."""
    stage = model.initial.name
    rule = f"stage:{stage}"
    for name in model.precedence:
        if evaluate(model.by_name[name].rule, values) is True:
            stage, rule = name, f"stage:{name}"
            break
    for _ in model.stages:
        lapse = next(
            (x for x in model.lapses if x.source == stage and evaluate(x.when, values) is True),
            None,
        )
        if lapse is None:
            break
        stage, rule = lapse.target, f"lapse:{lapse.name}"
    return stage, rule


def candidate_instants(
    model_features: Mapping[str, Feature],
    deadlines: Iterable[tuple[str, int]],
    events: Sequence[LogEvent],
) -> list[int]:
    """Every instant at which some feature of this customer can change."""
    instants = {e.ts for e in events}
    for feature in model_features.values():
        if feature.window:
            instants |= {e.ts + feature.window for e in events if matches(feature, e)}
    for ref, offset in deadlines:
        instants |= {e.ts + offset for e in events if matches(model_features[ref], e)}
    return sorted(instants)


def customer_history(model: CompiledModel, events: Sequence[LogEvent]) -> list[Transition]:
    """The stage transitions of one customer's events."""
    ordered = sorted(events, key=lambda e: e.ts)
    history: list[Transition] = []
    current: str | None = None
    for t in candidate_instants(model.features, model.feature_set.deadlines, ordered):
        stage, rule = stage_at(model, feature_values(model.features, ordered, t))
        if stage != current:
            at_t = [e.message_id for e in ordered if e.ts == t]
            cause = max(at_t) if at_t else None
            history.append(Transition(ordered[0].customer_id, t, current, stage, rule, cause))
            current = stage
    return history


def reference_history(model: CompiledModel, events: Iterable[LogEvent]) -> list[Transition]:
    """All transitions of all customers, sorted by customer and time."""
    by_customer: dict[int, list[LogEvent]] = defaultdict(list)
    for event in events:
        by_customer[event.customer_id].append(event)
    result: list[Transition] = []
    for customer_id in sorted(by_customer):
        result.extend(customer_history(model, by_customer[customer_id]))
    return result


def reference_feature_rows(
    feature_set: FeatureSet, events: Iterable[LogEvent]
) -> list[dict[str, Any]]:
    """Every feature at every instant one can change, per customer, sorted: what the engines'
    feature tables hold (health scores are computed from it)."""
    by_customer: dict[int, list[LogEvent]] = defaultdict(list)
    for event in events:
        by_customer[event.customer_id].append(event)
    rows: list[dict[str, Any]] = []
    for customer_id in sorted(by_customer):
        ordered = sorted(by_customer[customer_id], key=lambda e: e.ts)
        for t in candidate_instants(feature_set.features, feature_set.deadlines, ordered):
            at_t = [e.message_id for e in ordered if e.ts == t]
            values = feature_values(feature_set.features, ordered, t)
            cause = max(at_t) if at_t else None
            head = {"customer_id": customer_id, "ts": t, "is_event": len(at_t)}
            rows.append({**head, "cause_message_id": cause, **values})
    return rows
