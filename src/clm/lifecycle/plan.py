"""The lifecycle computation as Ibis expressions: written once, run on every engine.

Input: an events table with ``customer_id, ts, message_id, name, type, channel, campaign,
source, revenue`` and a ``prop(table, key, want)`` function that reads a typed JSON property
(the only engine-specific part). Steps:

1. *signals*: per event, whether it matches each aggregate feature, and the value it adds;
2. *instants*: the event times plus the synthetic instants at which a feature can change without
   an event: when a matching event leaves a window, and a lapse deadline after each matching
   event that is not followed by another one before the deadline;
3. one row per customer and instant, then features with cumulative window functions (numeric
   RANGE windows on ``ts`` for the windowed ones, which SQLite supports);
4. the stage at each instant (a CASE in precedence order, then lapses), and the rows where it
   changes. The "last value" of a feature uses a running group number and a max over the group,
   never ``first``/``last`` (which ignore nulls on some engines).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ibis
import ibis.expr.types as ir

from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.expressions import Name, Node, Prop, children, to_ibis
from clm.lifecycle.features import AGGREGATES, Feature, FeatureSet

PropFn = Callable[[ir.Table, str, str], ir.Value]
EVENT_COLUMNS = ("name", "type", "channel", "campaign", "source", "revenue")


def required_properties(features: Mapping[str, Feature]) -> set[tuple[str, str]]:
    """The (key, number|string) JSON properties the features read."""
    found: set[tuple[str, str]] = set()
    for feature in features.values():
        if feature.field and feature.field.startswith("properties."):
            key = feature.field.removeprefix("properties.")
            found.add((key, "number" if feature.kind == "sum" else feature.type))
        if feature.where is not None:
            found |= _props_in(feature.where, "string")
    return found


def _props_in(node: Node, want: str) -> set[tuple[str, str]]:
    from clm.lifecycle.expressions import Arith, Compare, InList, _in_want, _prop_want

    if isinstance(node, Prop):
        return {(node.key, want)}
    if isinstance(node, Compare):
        return _props_in(node.left, _prop_want(node.right)) | _props_in(
            node.right, _prop_want(node.left)
        )
    if isinstance(node, InList):
        return _props_in(node.operand, _in_want(node.values))
    if isinstance(node, Arith):
        return _props_in(node.left, "number") | _props_in(node.right, "number")
    found: set[tuple[str, str]] = set()
    for child in children(node):
        found |= _props_in(child, "string")
    return found


def _value_of(events: ir.Table, target: str, want: str, prop: PropFn) -> ir.Value:
    if target.startswith("properties."):
        return prop(events, target.removeprefix("properties."), want)
    column = events[target]
    return column.cast("float64") if want == "number" else column


def _match(events: ir.Table, feature: Feature, prop: PropFn) -> ir.BooleanValue:
    condition: ir.BooleanValue = ibis.literal(True)
    if feature.events:
        condition = events["name"].isin(list(feature.events))
    if feature.where is not None:
        where = to_ibis(
            feature.where, lambda n: events[n], lambda key, want: prop(events, key, want)
        )
        condition = condition & where
    return condition


def signal_columns(
    events: ir.Table, features: Mapping[str, Feature], prop: PropFn
) -> dict[str, ir.Value]:
    """Per event: ``c__f`` whether it counts for feature ``f`` (1/0), ``s__f`` the value it
    adds to a sum, ``v__f`` the value a "last" feature keeps (null when it does not match)."""
    columns: dict[str, ir.Value] = {}
    for name, feature in features.items():
        if feature.kind not in AGGREGATES:
            continue
        hit = _match(events, feature, prop)
        columns[f"c__{name}"] = ibis.ifelse(hit, 1, 0)
        if feature.kind == "sum":
            value = ibis.coalesce(_value_of(events, feature.field or "", "number", prop), 0.0)
            columns[f"s__{name}"] = ibis.ifelse(hit, value, 0.0)
        if feature.kind == "last":
            value = _value_of(events, feature.field or "", feature.type, prop)
            columns[f"v__{name}"] = ibis.ifelse(hit, value, ibis.null(value.type()))
    return columns


def signals(events: ir.Table, features: Mapping[str, Feature], prop: PropFn) -> ir.Table:
    columns = signal_columns(events, features, prop)
    table = events.mutate(is_event=ibis.literal(1), **columns)
    return table.select("customer_id", "ts", "message_id", "is_event", *columns)


def _synthetic(signals: ir.Table, feature_set: FeatureSet) -> list[ir.Table]:
    """Instants without events at which a window or a lapse deadline can change a stage."""
    parts: list[ir.Table] = []
    features = feature_set.features
    for name, window in sorted(feature_set.windows.items()):
        hits = signals.filter(signals[f"c__{name}"] > 0)
        parts.append(hits.select("customer_id", ts=hits.ts + window))
    for ref, offset in sorted(feature_set.deadlines):
        hits = signals.filter(signals[f"c__{ref}"] > 0)
        if features[ref].kind == "first_ts":
            first = hits.group_by("customer_id").aggregate(ts=hits.ts.min())
            parts.append(first.select("customer_id", ts=first.ts + offset))
            continue
        following = hits.ts.lead().over(ibis.window(group_by="customer_id", order_by="ts"))
        hits = hits.select("customer_id", "ts", following=following)
        lapsed = hits.filter(hits.following.isnull() | (hits.following > hits.ts + offset))
        parts.append(lapsed.select("customer_id", ts=lapsed.ts + offset))
    return parts


def instants(events: ir.Table, feature_set: FeatureSet, prop: PropFn) -> ir.Table:
    """One row per customer and instant, with the signals summed over the events at it."""
    per_event = signals(events, feature_set.features, prop)
    rows = per_event
    schema = per_event.schema()
    for part in _synthetic(per_event, feature_set):
        filler = {
            column: ibis.null(dtype)
            for column, dtype in schema.items()
            if column not in ("customer_id", "ts")
        }
        filler.update(
            {
                c: ibis.literal(0, dtype)
                for c, dtype in schema.items()
                if c.startswith(("c__", "s__")) or c == "is_event"
            }
        )
        rows = rows.union(part.mutate(**filler).select(*schema.names))
    aggregates: dict[str, ir.Value] = {"cause_message_id": rows.message_id.max()}
    aggregates["is_event"] = rows.is_event.sum()
    for column in schema.names:
        if column.startswith(("c__", "s__")):
            aggregates[column] = rows[column].sum()
        elif column.startswith("v__"):
            aggregates[column] = rows[column].max()
    return rows.group_by("customer_id", "ts").aggregate(**aggregates)


def feature_table(events: ir.Table, feature_set: FeatureSet, prop: PropFn) -> ir.Table:
    """Every feature at every instant of every customer."""
    table = instants(events, feature_set, prop)
    history = ibis.window(group_by="customer_id", order_by="ts", rows=(None, 0))
    aggregates: dict[str, ir.Value] = {}
    groups: dict[str, ir.Value] = {}
    for name, f in feature_set.features.items():
        hit = table[f"c__{name}"] if f.kind in AGGREGATES else None
        window = history
        if f.window:
            window = ibis.window(group_by="customer_id", order_by="ts", range=(-(f.window - 1), 0))
        if f.kind == "count":
            aggregates[name] = hit.sum().over(window)  # type: ignore[union-attr]
        elif f.kind == "exists":
            aggregates[name] = hit.sum().over(window) > 0  # type: ignore[union-attr]
        elif f.kind == "sum":
            aggregates[name] = table[f"s__{name}"].sum().over(window)
        elif f.kind in ("first_ts", "last_ts"):
            stamp = ibis.ifelse(hit > 0, table.ts, ibis.null("int64"))  # type: ignore[operator]
            aggregates[name] = (stamp.min() if f.kind == "first_ts" else stamp.max()).over(window)
        elif f.kind == "last":
            groups[f"g__{name}"] = ibis.ifelse(hit > 0, 1, 0).sum().over(history)  # type: ignore[operator]
    table = table.mutate(**aggregates, **groups)
    lasts = {
        name: table[f"v__{name}"].max().over(ibis.window(group_by=["customer_id", f"g__{name}"]))
        for name, f in feature_set.features.items()
        if f.kind == "last"
    }
    if lasts:
        table = table.mutate(**lasts)
    for name, f in feature_set.features.items():
        if f.kind == "days_since":
            table = table.mutate(**{name: table.ts - table[f.of or ""]})
        elif f.kind == "expr":
            assert f.expr is not None
            current = table
            expression = to_ibis(f.expr, lambda n, t=current: t[n], _no_props)  # type: ignore[misc]
            table = table.mutate(**{name: expression})
    return table


def _no_props(key: str, want: str) -> ir.Value:
    raise AssertionError("properties are only read by event filters")


def rule_expr(node: Node, table: ir.Table) -> ir.BooleanValue:
    result: ir.BooleanValue = to_ibis(node, lambda n: table[n], _no_props)
    return result


def stage_table(events: ir.Table, model: CompiledModel, prop: PropFn) -> ir.Table:
    """The stage and the rule behind it at every instant of every customer."""
    table = feature_table(events, model.feature_set, prop)
    initial = model.initial.name
    cases = [
        (rule_expr(model.by_name[name].rule, table), name)
        for name in model.precedence
        if name != initial
    ]
    stage = ibis.cases(*cases, else_=initial) if cases else ibis.literal(initial)
    rule = ibis.cases(*[(c, f"stage:{n}") for c, n in cases], else_=f"stage:{initial}")
    table = table.mutate(stage=stage, rule=rule if cases else ibis.literal(f"stage:{initial}"))
    for _ in range(_lapse_depth(model)):
        moves = [
            ((table.stage == lapse.source) & rule_expr(lapse.when, table), lapse)
            for lapse in model.lapses
        ]
        table = table.mutate(
            stage=ibis.cases(*[(c, lapse.target) for c, lapse in moves], else_=table.stage),
            rule=ibis.cases(*[(c, f"lapse:{lapse.name}") for c, lapse in moves], else_=table.rule),
        )
    return table


def _lapse_depth(model: CompiledModel) -> int:
    if not model.lapses:
        return 0
    depth = {lapse.source: 1 for lapse in model.lapses}
    for _ in model.stages:
        for lapse in model.lapses:
            depth[lapse.source] = max(depth[lapse.source], 1 + depth.get(lapse.target, 0))
    return max(depth.values())


def transitions(events: ir.Table, model: CompiledModel, prop: PropFn) -> ir.Table:
    """The rows where a customer's stage changes: the stage history."""
    table = stage_table(events, model, prop)
    previous = table.stage.lag().over(ibis.window(group_by="customer_id", order_by="ts"))
    table = table.mutate(from_stage=previous)
    changed = table.filter(table.from_stage.isnull() | (table.from_stage != table.stage))
    return changed.select(
        "customer_id",
        "ts",
        "from_stage",
        to_stage=changed.stage,
        rule=changed.rule,
        cause_message_id=ibis.ifelse(
            changed.is_event > 0, changed.cause_message_id, ibis.null("string")
        ),
    )


def resolve_columns(table: ir.Table) -> Callable[[str], Any]:
    return lambda n: table[n]


__all__ = ["EVENT_COLUMNS", "Name", "feature_table", "required_properties", "transitions"]
