"""Features and stages evaluated column-wise in NumPy, for batches of whole customers.

The input is the per-event signals of the Ibis plan (``plan.signals``: which events each
feature counts, the values it sums or keeps), sorted by customer and time. Each batch is
evaluated without a per-customer Python loop:

1. the events of one instant are summed into one row (the cause is the event with the largest
   message id);
2. the instants without events (a window closing, a lapse deadline) are added, exactly as in
   ``plan.py``;
3. running counts and sums are prefix sums restarted at each customer; windowed ones subtract
   the prefix sum found by a binary search for ``ts - window``; first/last timestamps and last
   values come from running indices;
4. rules are evaluated with SQL's three-valued logic (``vector_logic.py``),
   the stage is chosen in precedence order, lapses applied, and the changes kept.

``columnar.py`` feeds it from DuckDB; the cross-engine tests hold the result to the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.features import AGGREGATES, FeatureSet
from clm.lifecycle.vector_logic import Column, evaluate

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
TRANSITION_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("ts", pa.int64()),
        ("from_stage", pa.string()),
        ("to_stage", pa.string()),
        ("rule", pa.string()),
        ("cause_message_id", pa.string()),
    ]
)


@dataclass
class Instants:
    """One row per customer and instant, sorted, with the signals summed over its events."""

    customer: Ints
    ts: Ints
    key: Ints  # customer rank and time in one sortable number
    start: Ints  # index of the customer's first instant, per row
    cause: Ints  # position of the cause event in the batch, -1 for instants without events
    signals: dict[str, npt.NDArray[Any]]
    strings: list[str]  # sorted: the codes of string values index this list


@dataclass
class Signals:
    """Per-event signals as NumPy columns: ``c__`` flags (int8), ``s__`` sums (nulls as 0),
    ``v__`` kept values (float64, NaN when null; strings as codes into ``strings``, sorted).
    ``row`` points into the message ids, which stay in one Arrow array: they are needed only
    for the causes, and moving strings through the sort would cost more than all the rest."""

    customer: Ints
    ts: Ints
    row: Ints
    columns: dict[str, npt.NDArray[Any]]
    strings: list[str]


def _causes(messages: pa.Array, rows: Ints, starts: Ints, ends: Ints) -> Ints:
    """Per instant, the position of its event with the largest message id (the cause).

    Instants of several events (common when a source records dates, not times) are resolved
    together: their events sorted by instant, then message id, the last of each wins. Arrow
    compares strings by UTF-8 bytes, which is code point order, as Python's ``max``."""
    several = np.flatnonzero(ends > starts)
    if len(several) == 0:
        return ends
    sizes = ends[several] - starts[several] + 1
    instant = np.repeat(np.arange(len(several)), sizes)
    position = np.repeat(starts[several], sizes) + (
        np.arange(len(instant)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    )
    ids = messages.take(pa.array(rows[position]))
    order = pc.sort_indices(
        pa.table({"instant": instant, "id": ids}),
        sort_keys=[("instant", "ascending"), ("id", "ascending")],
    ).to_numpy()
    last_of_each = np.cumsum(sizes) - 1
    causes = ends.copy()
    causes[several] = position[order[last_of_each]]
    return causes


def _synthetic(
    customer: Ints, ts: Ints, hits: Mapping[str, Bools], features: FeatureSet
) -> tuple[Ints, Ints]:
    """Instants without events: window exits, and lapse deadlines not pre-empted by a new hit."""
    customers: list[Ints] = []
    stamps: list[Ints] = []
    for name, window in sorted(features.windows.items()):
        customers.append(customer[hits[name]])
        stamps.append(ts[hits[name]] + window)
    for ref, offset in sorted(features.deadlines):
        index = np.flatnonzero(hits[ref])
        hc, ht = customer[index], ts[index]
        if features.features[ref].kind == "first_ts":
            keep = np.ones(len(hc), dtype=np.bool_)
            keep[1:] = hc[1:] != hc[:-1]
        else:
            same_next = np.zeros(len(hc), dtype=np.bool_)
            same_next[:-1] = hc[1:] == hc[:-1]
            following = np.empty_like(ht)
            following[:-1] = ht[1:]
            keep = ~same_next | (following > ht + offset)
        customers.append(hc[keep])
        stamps.append(ht[keep] + offset)
    if not customers:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(customers), np.concatenate(stamps)


def instants(
    batch: Signals,
    messages: pa.Array,
    features: FeatureSet,
    aliases: Mapping[str, str] | None = None,
) -> Instants:
    """Aggregate a sorted batch of event signals into instants, adding the synthetic ones.

    ``aliases`` names the signal columns left out of the batch because they equal another."""
    customer, ts = batch.customer, batch.ts
    n = len(customer)
    raw: dict[str, npt.NDArray[Any]] = dict(batch.columns)
    for alias, same in (aliases or {}).items():
        raw[alias] = raw[same]
    hits = {
        name: raw[f"c__{name}"] > 0 for name, f in features.features.items() if f.kind in AGGREGATES
    }
    # the events of one instant: runs of equal (customer, ts), usually of one event
    new_run = np.ones(n, dtype=np.bool_)
    new_run[1:] = (customer[1:] != customer[:-1]) | (ts[1:] != ts[:-1])
    starts = np.flatnonzero(new_run)
    ends = _causes(messages, batch.row, starts, np.append(starts[1:], n) - 1)
    ev_customer, ev_ts = customer[starts], ts[starts]
    sums = raw
    if len(starts) < n:
        sums = {column: _per_instant(column, values, starts) for column, values in raw.items()}
    syn_customer, syn_ts = _synthetic(customer, ts, hits, features)
    # one sortable key: the customer's rank in the batch, then the time
    new_customer = np.ones(len(ev_customer), dtype=np.bool_)
    new_customer[1:] = ev_customer[1:] != ev_customer[:-1]
    ranks = ev_customer[new_customer]
    base = int(min(ev_ts.min(initial=0), syn_ts.min(initial=0)))
    span = int(max(ev_ts.max(initial=0), syn_ts.max(initial=0))) - base + 1
    if len(ranks) * span >= 2**62:
        raise ValueError("time span too large for one batch; use smaller batches")
    ev_key = (np.cumsum(new_customer, dtype=np.int64) - 1) * span + (ev_ts - base)
    syn_key = np.searchsorted(ranks, syn_customer).astype(np.int64) * span + (syn_ts - base)
    key = _sorted_union(ev_key, np.sort(syn_key))
    rows = np.searchsorted(key, ev_key)
    size = len(key)
    rank = key // span
    customer_of = ranks[rank]
    first = np.ones(size, dtype=np.bool_)
    first[1:] = rank[1:] != rank[:-1]
    group_starts = np.flatnonzero(first)
    start = group_starts[np.cumsum(first) - 1]
    signals: dict[str, npt.NDArray[Any]] = {}
    for column, values in sums.items():
        if column.startswith("v__"):
            signals[column] = np.full(size, np.nan)
        else:
            signals[column] = np.zeros(size, dtype=values.dtype)
        signals[column][rows] = values
    cause = np.full(size, -1, dtype=np.int64)
    cause[rows] = ends
    return Instants(customer_of, key % span + base, key, start, cause, signals, batch.strings)


def _per_instant(column: str, values: npt.NDArray[Any], starts: Ints) -> npt.NDArray[Any]:
    """One instant's events summed (counts in int32: an int8 flag would overflow), or the
    largest kept value."""
    if column.startswith("v__"):
        return np.fmax.reduceat(values, starts)
    if column.startswith("c__"):
        return np.add.reduceat(values, starts, dtype=np.int32)
    return np.add.reduceat(values, starts)


def _sorted_union(left: Ints, right: Ints) -> Ints:
    """The distinct values of two sorted arrays, sorted (a merge: timsort finds the two runs)."""
    both = np.concatenate([left, right])
    both = both[np.argsort(both, kind="stable")]
    keep = np.ones(len(both), dtype=np.bool_)
    keep[1:] = both[1:] != both[:-1]
    result: Ints = both[keep]
    return result


def _restarted_cumsum(values: Floats, start: Ints) -> Floats:
    """Running sums that restart at each customer (no drift from earlier customers)."""
    adjusted = values.astype(np.float64)
    heads = np.flatnonzero(start == np.arange(len(start)))
    totals = np.add.reduceat(values, heads) if len(heads) else values[:0]
    adjusted[heads[1:]] -= totals[:-1]
    result: Floats = np.cumsum(adjusted)
    return result


def feature_columns(rows: Instants, features: FeatureSet) -> dict[str, Column]:
    """Every feature at every instant, in dependency order."""
    size = len(rows.ts)
    index = np.arange(size)
    everywhere = np.ones(size, dtype=np.bool_)
    stamp = rows.ts.astype(np.float64)
    columns: dict[str, Column] = {}
    for name, f in features.features.items():
        if f.kind in ("count", "exists", "sum"):
            values = rows.signals[f"{'s' if f.kind == 'sum' else 'c'}__{name}"]
            if f.kind == "sum":
                running = _restarted_cumsum(values, rows.start)
            else:  # whole numbers: exact prefix sums minus the total before the customer
                total = np.cumsum(values, dtype=np.int64)
                running = total - (total[rows.start] - values[rows.start])
            if f.window:
                before = np.searchsorted(rows.key, rows.key - f.window, side="right") - 1
                inside = before >= rows.start
                running = running - np.where(inside, running[before], 0.0)
            data = (running > 0) if f.kind == "exists" else running
            columns[name] = Column(data.astype(np.float64), everywhere)
        elif f.kind in ("first_ts", "last_ts", "last"):
            hit = rows.signals[f"c__{name}"] > 0
            if f.kind == "first_ts":
                hit_rows = np.flatnonzero(hit)
                at = np.searchsorted(hit_rows, rows.start)
                found = (
                    hit_rows[np.minimum(at, max(len(hit_rows) - 1, 0))] if len(hit_rows) else index
                )
                known = (at < len(hit_rows)) & (found <= index) if len(hit_rows) else ~everywhere
            else:
                found = np.maximum.accumulate(np.where(hit, index, -1)) if size else index
                known = found >= rows.start
            source = rows.signals[f"v__{name}"] if f.kind == "last" else stamp
            picked: Floats = source[np.maximum(found, 0)].astype(np.float64)
            columns[name] = Column(picked, known & ~np.isnan(picked))
        elif f.kind == "days_since":
            ref = columns[f.of or ""]
            columns[name] = Column(stamp - ref.data, ref.known)
        else:
            assert f.expr is not None
            columns[name] = evaluate(f.expr, columns, rows.strings, size)
    return columns


def stages(
    model: CompiledModel, columns: Mapping[str, Column], rows: Instants
) -> tuple[Ints, Ints]:
    """(stage index, rule index) at every instant; rules index ``rule_names(model)``."""
    size = len(rows.ts)
    initial = model.initial
    stage = np.full(size, initial.index, dtype=np.int64)
    rule = np.full(size, initial.index, dtype=np.int64)
    for name in reversed(model.precedence):
        if name == initial.name:
            continue
        target = model.by_name[name]
        fires = evaluate(target.rule, columns, rows.strings, size).fires()
        stage[fires] = target.index
        rule[fires] = target.index
    lapse_fires = [evaluate(x.when, columns, rows.strings, size).fires() for x in model.lapses]
    for _ in model.stages:
        moved = stage.copy()
        changed = False
        for number in reversed(range(len(model.lapses))):
            lapse = model.lapses[number]
            hit = lapse_fires[number] & (stage == model.by_name[lapse.source].index)
            if hit.any():
                changed = True
                moved[hit] = model.by_name[lapse.target].index
                rule[hit] = len(model.stages) + number
        stage = moved
        if not changed:
            break
    return stage, rule


def rule_names(model: CompiledModel) -> list[str]:
    return [f"stage:{s.name}" for s in model.stages] + [f"lapse:{x.name}" for x in model.lapses]


def batch_transitions(
    batch: Signals,
    messages: pa.Array,
    model: CompiledModel,
    aliases: Mapping[str, str] | None = None,
) -> pa.Table:
    """The stage history of the (whole) customers in one sorted batch of event signals."""
    if len(batch.customer) == 0:
        return TRANSITION_SCHEMA.empty_table()
    rows = instants(batch, messages, model.feature_set, aliases)
    stage, rule = stages(model, feature_columns(rows, model.feature_set), rows)
    first = rows.start == np.arange(len(stage))
    previous = np.roll(stage, 1)
    changed = np.flatnonzero(first | (stage != previous))
    stage_names = pa.array([s.name for s in model.stages], pa.string())
    cause_rows = rows.cause[changed]
    message_rows = batch.row[np.maximum(cause_rows, 0)]
    causes = pc.take(messages, pa.array(message_rows, pa.int64(), mask=cause_rows < 0))
    from_index = pa.array(previous[changed], pa.int64(), mask=first[changed])
    return pa.table(
        {
            "customer_id": pa.array(rows.customer[changed], pa.int64()),
            "ts": pa.array(rows.ts[changed], pa.int64()),
            "from_stage": pc.take(stage_names, from_index),
            "to_stage": pc.take(stage_names, pa.array(stage[changed])),
            "rule": pc.take(pa.array(rule_names(model), pa.string()), pa.array(rule[changed])),
            "cause_message_id": causes.cast(pa.string()),
        },
        schema=TRANSITION_SCHEMA,
    )


_ARROW_TYPES = {"bool": pa.bool_(), "string": pa.string(), "timestamp": pa.int64()}


def feature_schema(features: FeatureSet, wanted: Sequence[str]) -> pa.Schema:
    head = [
        ("customer_id", pa.int64()),
        ("ts", pa.int64()),
        ("is_event", pa.int64()),
        ("cause_message_id", pa.string()),
    ]
    types = [(n, _ARROW_TYPES.get(features.features[n].type, pa.float64())) for n in wanted]
    return pa.schema(head + types)


def batch_features(
    batch: Signals,
    messages: pa.Array,
    features: FeatureSet,
    aliases: Mapping[str, str],
    wanted: Sequence[str],
) -> pa.Table:
    """The ``wanted`` features at every instant of the customers in one sorted batch: numbers
    as float64, true/false as booleans, strings decoded; null where not known."""
    schema = feature_schema(features, wanted)
    if len(batch.customer) == 0:
        return schema.empty_table()
    rows = instants(batch, messages, features, aliases)
    columns = feature_columns(rows, features)
    has_event = rows.cause >= 0
    message_rows = batch.row[np.maximum(rows.cause, 0)]
    data: dict[str, Any] = {
        "customer_id": rows.customer,
        "ts": rows.ts,
        "is_event": has_event.astype(np.int64),
        "cause_message_id": pc.take(messages, pa.array(message_rows, mask=~has_event)),
    }
    strings = pa.array(rows.strings, pa.string())
    for name in wanted:
        column, kind = columns[name], features.features[name].type
        if kind == "string":
            codes = pa.array(
                np.where(column.known, column.data, 0).astype(np.int64), mask=~column.known
            )
            data[name] = pc.take(strings, codes)
        elif kind == "bool":
            data[name] = pa.array(column.data != 0, mask=~column.known)
        elif kind == "timestamp":
            stamps = np.where(column.known, column.data, 0).astype(np.int64)
            data[name] = pa.array(stamps, mask=~column.known)
        else:
            data[name] = pa.array(column.data, pa.float64(), mask=~column.known)
    return pa.table(data, schema=schema)
