"""Features and stages evaluated column-wise in NumPy: the fast path behind the DuckDB engine.

DuckDB scans the log (Parquet or Arrow), computes the per-event signals of the same Ibis plan
(``plan.signals``: which events each feature counts, the values it sums or keeps) and streams
them sorted by customer, time and message id. Each batch of whole customers is then evaluated
here without a per-customer Python loop:

1. the events of one instant are summed into one row (the cause is the largest message id,
   which is the last row of the instant thanks to the sort);
2. the instants without events (a window closing, a lapse deadline) are added, exactly as in
   ``plan.py``;
3. running counts and sums are prefix sums restarted at each customer; windowed ones subtract
   the prefix sum found by a binary search for ``ts - window``; first/last timestamps and last
   values come from running indices;
4. rules are evaluated with SQL's three-valued logic (a value and a "known" mask per column),
   the stage is chosen in precedence order, lapses applied, and the changes kept.

The result is the table of ``plan.transitions``; the cross-engine tests hold it to the reference.
Memory is bounded by the batch size (plus DuckDB's sort, which spills to disk when needed).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.engines import duckdb_source
from clm.lifecycle.expressions import (
    Arith,
    BoolOp,
    Call,
    Compare,
    InList,
    Lit,
    Name,
    Node,
    Not,
    Scalar,
)
from clm.lifecycle.features import AGGREGATES, FeatureSet
from clm.lifecycle.plan import PropFn, required_properties, signal_columns

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


@dataclass(frozen=True)
class Column:
    """Values (float64; true/false as 1/0, strings as sorted codes) and where they are known."""

    data: Floats
    known: Bools

    def fires(self) -> Bools:
        result: Bools = self.known & (self.data != 0)
        return result


@dataclass
class Instants:
    """One row per customer and instant, sorted, with the signals summed over its events."""

    customer: Ints
    ts: Ints
    key: Ints  # customer rank and time in one sortable number
    start: Ints  # index of the customer's first instant, per row
    cause: Ints  # row of the cause event in the batch, -1 for instants without events
    signals: dict[str, npt.NDArray[Any]]
    strings: list[str]  # sorted: the codes of string values index this list


def _string_codes(batch: pa.Table, columns: Sequence[str]) -> tuple[dict[str, Floats], list[str]]:
    values: set[str] = set()
    for column in columns:
        values |= {v for v in pc.unique(batch.column(column)).to_pylist() if v is not None}
    strings = sorted(values)
    dictionary = pa.array(strings, pa.string())
    codes = {}
    for column in columns:
        index = pc.index_in(batch.column(column), value_set=dictionary)
        codes[column] = index.to_numpy(zero_copy_only=False).astype(np.float64)
    return codes, strings


def _numbers(column: pa.ChunkedArray | pa.Array) -> Floats:
    array = column.cast(pa.float64())
    result: Floats = np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)
    return result


def _causes(batch: pa.Table, starts: Ints, ends: Ints) -> Ints:
    """Per instant, the row of its event with the largest message id (the recorded cause)."""
    several = np.flatnonzero(ends > starts)
    if len(several) == 0:
        return ends
    causes = ends.copy()
    messages = batch.column("message_id")
    for run in several:
        first, last = int(starts[run]), int(ends[run])
        ids = messages.slice(first, last - first + 1).to_pylist()
        causes[run] = first + max(range(len(ids)), key=lambda i: ids[i])
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
    batch: pa.Table, features: FeatureSet, aliases: Mapping[str, str] | None = None
) -> Instants:
    """Aggregate a sorted batch of event signals into instants, adding the synthetic ones.

    ``aliases`` names the signal columns left out of the batch because they equal another."""
    customer = batch.column("customer_id").to_numpy().astype(np.int64)
    ts = batch.column("ts").to_numpy().astype(np.int64)
    n = len(customer)
    string_columns = [
        f"v__{name}"
        for name, f in features.features.items()
        if f.kind == "last" and f.type == "string"
    ]
    codes, strings = _string_codes(batch, string_columns)
    raw: dict[str, npt.NDArray[Any]] = {}
    for column in batch.column_names:
        if column in codes:
            raw[column] = codes[column]
        elif column.startswith("v__"):
            raw[column] = _numbers(batch.column(column))
        elif column.startswith("s__"):
            raw[column] = np.nan_to_num(_numbers(batch.column(column)))
        elif column.startswith("c__"):
            raw[column] = batch.column(column).to_numpy().astype(np.int32)
    for alias, same in (aliases or {}).items():
        raw[alias] = raw[same]
    hits = {
        name: raw[f"c__{name}"] > 0 for name, f in features.features.items() if f.kind in AGGREGATES
    }
    # the events of one instant: runs of equal (customer, ts), usually of one event
    new_run = np.ones(n, dtype=np.bool_)
    new_run[1:] = (customer[1:] != customer[:-1]) | (ts[1:] != ts[:-1])
    starts = np.flatnonzero(new_run)
    ends = _causes(batch, starts, np.append(starts[1:], n) - 1)
    ev_customer, ev_ts = customer[starts], ts[starts]
    sums = raw
    if len(starts) < n:
        sums = {
            column: (np.fmax if column.startswith("v__") else np.add).reduceat(values, starts)
            for column, values in raw.items()
        }
    syn_customer, syn_ts = _synthetic(customer, ts, hits, features)
    # one sortable key: the customer's rank in the batch, then the time
    new_customer = np.ones(len(ev_customer), dtype=np.bool_)
    new_customer[1:] = ev_customer[1:] != ev_customer[:-1]
    ranks = ev_customer[new_customer]
    base = int(min(ev_ts.min(initial=0), syn_ts.min(initial=0)))
    span = int(max(ev_ts.max(initial=0), syn_ts.max(initial=0))) - base + 1
    if len(ranks) * span >= 2**62:
        raise ValueError("time span too large for one batch; use smaller batches")
    ev_key = np.searchsorted(ranks, ev_customer).astype(np.int64) * span + (ev_ts - base)
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
    return Instants(customer_of, key % span + base, key, start, cause, signals, strings)


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


def _literal(value: Scalar, strings: list[str]) -> float:
    """A literal as a column value; an unseen string falls between the codes around it."""
    if isinstance(value, str):
        at = int(np.searchsorted(np.asarray(strings, dtype=object), value)) if strings else 0
        return float(at) if at < len(strings) and strings[at] == value else at - 0.5
    return float(value) if value is not None else 0.0


def evaluate(node: Node, env: Mapping[str, Column], strings: list[str], size: int) -> Column:
    """``node`` over whole columns, with SQL's null semantics (see ``expressions.evaluate``)."""

    def go(n: Node) -> Column:
        if isinstance(n, Lit):
            known = np.full(size, n.value is not None)
            return Column(np.full(size, _literal(n.value, strings)), known)
        if isinstance(n, Name):
            return env[n.name]
        if isinstance(n, Not):
            inner = go(n.operand)
            return Column((inner.data == 0).astype(np.float64), inner.known)
        if isinstance(n, BoolOp):
            parts = [go(o) for o in n.operands]
            true = [p.known & (p.data != 0) for p in parts]
            false = [p.known & (p.data == 0) for p in parts]
            if n.op == "and":
                all_true, any_false = np.logical_and.reduce(true), np.logical_or.reduce(false)
                return Column(all_true.astype(np.float64), all_true | any_false)
            any_true, all_false = np.logical_or.reduce(true), np.logical_and.reduce(false)
            return Column(any_true.astype(np.float64), any_true | all_false)
        if isinstance(n, Compare):
            left, right = go(n.left), go(n.right)
            data = _COMPARE[n.op](left.data, right.data).astype(np.float64)
            return Column(data, left.known & right.known)
        if isinstance(n, InList):
            inner = go(n.operand)
            wanted = [_literal(v, strings) for v in n.values]
            found = np.isin(inner.data, wanted) != n.negate
            return Column(found.astype(np.float64), inner.known)
        if isinstance(n, Arith):
            left, right = go(n.left), go(n.right)
            known = left.known & right.known
            if n.op == "/":
                known = known & (right.data != 0)
                data = np.divide(left.data, np.where(right.data == 0, 1.0, right.data))
            else:
                data = _ARITH[n.op](left.data, right.data)
            return Column(data, known)
        if isinstance(n, Call):
            first = go(n.args[0])
            if n.fn == "known":
                return Column(first.known.astype(np.float64), np.ones(size, dtype=np.bool_))
            second = go(n.args[1])
            return Column(
                np.where(first.known, first.data, second.data), first.known | second.known
            )
        raise TypeError(n)

    with np.errstate(all="ignore"):
        return go(node)


_COMPARE = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}
_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply}


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
    batch: pa.Table, model: CompiledModel, aliases: Mapping[str, str] | None = None
) -> pa.Table:
    """The stage history of the (whole) customers in one sorted batch of event signals."""
    if batch.num_rows == 0:
        return TRANSITION_SCHEMA.empty_table()
    rows = instants(batch, model.feature_set, aliases)
    stage, rule = stages(model, feature_columns(rows, model.feature_set), rows)
    first = rows.start == np.arange(len(stage))
    previous = np.roll(stage, 1)
    changed = np.flatnonzero(first | (stage != previous))
    stage_names = pa.array([s.name for s in model.stages], pa.string())
    cause_rows = rows.cause[changed]
    causes = pc.take(
        batch.column("message_id"),
        pa.array(cause_rows, pa.int64(), mask=cause_rows < 0),
    )
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


def whole_customers(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.Table]:
    """Regroup a stream sorted by customer into tables that never split a customer."""
    carry: pa.Table | None = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        # the cut is found in the new batch alone: the carry is one customer, never past it
        customers = batch.column("customer_id").to_numpy()
        cut = int(np.searchsorted(customers, customers[-1], side="left"))
        table = pa.Table.from_batches([batch])
        if carry is not None:
            if cut == 0 and carry.column("customer_id")[0].as_py() == int(customers[-1]):
                carry = pa.concat_tables([carry, table])
                continue
            cut += carry.num_rows
            table = pa.concat_tables([carry, table])
        if cut > 0:
            yield table.slice(0, cut)
        carry = table.slice(cut)
    if carry is not None and carry.num_rows:
        yield carry


def _signal_plan(
    events: ir.Table, model: CompiledModel, prop: PropFn
) -> tuple[ir.Table, dict[str, str]]:
    """The per-event signals, each distinct one once (features often share a filter, like
    ``purchase_count`` and ``last_purchase``), flags as one byte: DuckDB sorts every byte of
    every column, so fewer and narrower columns make the sort cheaper."""
    distinct: dict[str, ir.Value] = {}
    aliases: dict[str, str] = {}
    for name, value in signal_columns(events, model.features, prop).items():
        same = next((d for d, v in distinct.items() if d[:3] == name[:3] and v.equals(value)), None)
        if same is not None:
            aliases[name] = same
        else:
            distinct[name] = value.cast("int8") if name.startswith("c__") else value
    return events.select("customer_id", "ts", "message_id", **distinct), aliases


def duckdb_transitions(
    events: pa.Table | str | Path,
    model: CompiledModel,
    customer_ids: Sequence[int] | None = None,
    *,
    batch_rows: int = 250_000,
    workers: int = 2,
) -> pa.Table:
    """The stage history computed by DuckDB (scan, signals, sort) and NumPy (the rest).

    ``customer_ids`` limits the work to those customers (the incremental update): DuckDB
    joins the log against a small table of them. NumPy holds at most ``workers + 1`` batches
    of about ``batch_rows`` events at once (small batches stay in the CPU caches).
    """
    source = duckdb_source(events, required_properties(model.features))
    con = source.backend.con
    table = source.events
    if customer_ids is not None:
        wanted = pa.table({"customer_id": pa.array(sorted(set(customer_ids)), pa.int64())})
        con.register("wanted_customers", wanted)
        table = table.filter(
            table.customer_id.isin(source.backend.table("wanted_customers").customer_id)
        )
    plan, aliases = _signal_plan(table, model, source.prop)
    parts: list[pa.Table] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[pa.Table]] = deque()
        for batch in whole_customers(_sorted_signals(con, plan, batch_rows)):
            # submit before waiting: DuckDB reads (and sorts) the next batch meanwhile
            pending.append(pool.submit(batch_transitions, batch, model, aliases))
            if len(pending) > workers:
                parts.append(pending.popleft().result())
        parts.extend(f.result() for f in pending)
    con.close()
    return pa.concat_tables([TRANSITION_SCHEMA.empty_table(), *parts])


def _sorted_signals(con: Any, plan: ir.Table, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The signals sorted by customer and time, in batches.

    One sort of the whole log: sorting ranges of customers one by one (to start NumPy
    before all is sorted) was measured slower, as every range re-reads the signals."""
    sql = ibis.to_sql(plan.order_by(["customer_id", "ts"]), dialect="duckdb")
    yield from con.sql(str(sql)).to_arrow_reader(batch_rows)
