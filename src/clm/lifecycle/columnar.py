"""The DuckDB engine: DuckDB scans the log and computes the per-event signals, NumPy the rest.

DuckDB scans the log (Parquet or Arrow) and computes the signals of the same Ibis plan
(``plan.signals``), unsorted: sorting the whole log by customer and time in DuckDB cost as
much CPU as everything else together (every byte of every column moves). Here the signals become
NumPy columns as they stream in, the customers are cut into ranges of about ``batch_rows``
events (a stable counting sort of the range number, linear), and each range is sorted by
(customer, time) and evaluated (``vectorised.py``) by a pool of worker threads; a range is
small enough for its sort to stay in the CPU caches. Message ids are kept aside in one Arrow
array and looked up only for the causes.

Memory: per event its customer, time and packed flags (18 bytes with up to 15 flags), the
value and sum signals of the events that carry one, the message ids, and the work of
``workers`` ranges at a time; linear in the log, nothing spills to disk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
from clm.lifecycle.expressions import InList, Lit, Node, children
from clm.lifecycle.features import FeatureSet
from clm.lifecycle.plan import PropFn, required_properties, signal_columns
from clm.lifecycle.vectorised import (
    TRANSITION_SCHEMA,
    Ints,
    Signals,
    batch_features,
    batch_transitions,
    feature_schema,
)

__all__ = [
    "TRANSITION_SCHEMA",
    "collect_signals",
    "customer_ranges",
    "duckdb_features",
    "duckdb_transitions",
]

RangeProgress = Callable[[int, int], None]
_FETCH_ROWS = 1_000_000
_FLAGS = "flags"


@dataclass(frozen=True)
class SignalPlan:
    """The per-event signals to fetch: each distinct signal once (features often share a
    filter, like ``purchase_count`` and ``last_purchase``; ``aliases`` maps the others), and
    the 0/1 flags packed into the bits of one integer (``flags``, in bit order): one column
    to fetch and to move instead of one per feature."""

    table: ir.Table
    aliases: dict[str, str]
    flags: list[str]
    literals: set[str]


def _signal_plan(events: ir.Table, features: FeatureSet, prop: PropFn) -> SignalPlan:
    distinct: dict[str, ir.Value] = {}
    aliases: dict[str, str] = {}
    for name, value in signal_columns(events, features.features, prop).items():
        same = next((d for d, v in distinct.items() if d[:3] == name[:3] and v.equals(value)), None)
        if same is not None:
            aliases[name] = same
        else:
            distinct[name] = value
    flags = [name for name in distinct if name.startswith("c__")]
    bits = "int16" if len(flags) < 15 else "int32" if len(flags) < 31 else "int64"
    mask: ir.Value = ibis.literal(0, bits)
    for bit, name in enumerate(flags):
        mask = mask + distinct.pop(name).cast(bits) * ibis.literal(1 << bit, bits)
    table = events.select("customer_id", "ts", "message_id", **{_FLAGS: mask}, **distinct)
    return SignalPlan(table, aliases, flags, _string_literals(features))


def _string_literals(features: FeatureSet) -> set[str]:
    """The strings the definitions spell: they get codes too, so a string feature computed
    from one (``coalesce(plan, 'free')``) decodes back to it."""
    found: set[str] = set()

    def walk(node: Node) -> None:
        if isinstance(node, Lit) and isinstance(node.value, str):
            found.add(node.value)
        if isinstance(node, InList):
            found.update(v for v in node.values if isinstance(v, str))
        for child in children(node):
            walk(child)

    for feature in features.features.values():
        if feature.expr is not None:
            walk(feature.expr)
    return found


def _numbers(column: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.float64]:
    array = column.cast(pa.float64())
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def _numpy_column(name: str, column: pa.Array) -> npt.NDArray[Any]:
    if name == _FLAGS and len(column):  # as narrow as DuckDB made it
        return np.asarray(column.to_numpy(zero_copy_only=False))
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def _string_codes(
    columns: dict[str, pa.ChunkedArray], literals: set[str]
) -> tuple[dict[str, npt.NDArray[np.float64]], list[str]]:
    """String values as float codes into one sorted list (NaN for null), so rules compare
    them as numbers; all string columns share the list."""
    values = set(literals)
    for column in columns.values():
        values |= {v for v in pc.unique(column).to_pylist() if v is not None}
    strings = sorted(values)
    dictionary = pa.array(strings, pa.string())
    codes = {
        name: _numbers(pc.index_in(column.cast(pa.string()), value_set=dictionary))
        for name, column in columns.items()
    }
    return codes, strings


@dataclass
class EventLog:
    """The signals of every event, in DuckDB's (any) order: customer, time and packed flags
    per event; a value or sum column only where its flag is set (at ascending ``positions``),
    as most events carry none. Positions in this order are the ``Signals.row`` of later steps
    and index the message ids."""

    customer: Ints
    ts: Ints
    flags: npt.NDArray[Any]
    values: dict[str, tuple[Ints, npt.NDArray[np.float64]]]
    strings: list[str]


def _flag_of(plan: SignalPlan, column: str) -> str:
    flag = f"c__{column[3:]}"
    return plan.aliases.get(flag, flag)


def collect_signals(con: Any, plan: SignalPlan) -> tuple[EventLog, pa.Array]:
    """Every event's signals as NumPy columns, and the message ids in the same order."""
    reader = con.sql(str(ibis.to_sql(plan.table, dialect="duckdb"))).to_arrow_reader(_FETCH_ROWS)
    schema: pa.Schema = reader.schema
    bits = {
        f.name: plan.flags.index(_flag_of(plan, f.name))
        for f in schema
        if f.name.startswith(("v__", "s__"))
    }
    dense: dict[str, list[npt.NDArray[Any]]] = {"customer_id": [], "ts": [], _FLAGS: []}
    positions: dict[str, list[Ints]] = {name: [] for name in bits}
    picked: dict[str, list[pa.Array]] = {name: [] for name in bits}
    messages: list[pa.Array] = []
    offset = 0
    for batch in reader:
        for name, parts in dense.items():
            parts.append(_numpy_column(name, batch.column(name)))
        packed = dense[_FLAGS][-1]
        for name, bit in bits.items():
            hit = np.flatnonzero((packed >> bit) & 1)
            positions[name].append(hit + offset)
            picked[name].append(batch.column(name).take(pa.array(hit, pa.int64())))
        messages.append(batch.column("message_id").cast(pa.string()))
        offset += batch.num_rows
    arrays = {
        name: np.concatenate(parts) if parts else np.empty(0, np.int64)
        for name, parts in dense.items()
    }
    columns = {name: pa.chunked_array(picked[name], schema.field(name).type) for name in bits}
    text = {n: c for n, c in columns.items() if pa.types.is_string(c.type)}
    codes, strings = _string_codes(text, plan.literals)
    values = {}
    for name, column in columns.items():
        data = codes[name] if name in codes else _numbers(column)
        where = np.concatenate(positions[name]) if positions[name] else np.empty(0, np.int64)
        values[name] = (where, np.nan_to_num(data) if name.startswith("s__") else data)
    log = EventLog(arrays["customer_id"], arrays["ts"], arrays[_FLAGS], values, strings)
    return log, pa.concat_arrays(messages) if messages else pa.array([], pa.string())


def customer_ranges(customer: Ints, batch_rows: int) -> list[Ints]:
    """Event positions cut into ranges of whole customers, about ``batch_rows`` events each
    when customer ids are spread evenly (a range is never split, only larger)."""
    if len(customer) == 0:
        return []
    low, high = int(customer.min()), int(customer.max())
    count = max(1, min(-(-len(customer) // batch_rows), high - low + 1))
    width = -(-(high - low + 1) // count)
    number = (customer - low) // width
    # a stable sort of small integers is a counting (radix) sort in NumPy: linear
    order = np.argsort(number.astype(np.int16 if count < 2**15 else np.int32), kind="stable")
    cuts = np.cumsum(np.bincount(number, minlength=count))
    return [part for part in np.split(order, cuts[:-1]) if len(part)]


def _sorted_range(log: EventLog, plan: SignalPlan, positions: Ints) -> Signals:
    """One range of customers sorted by customer and time, flags unpacked (ties in any order:
    the cause of an instant is chosen by message id, not by position).

    A value or sum column is filled only where its flag is set (elsewhere it is null or 0 by
    construction), from the few events that carry one."""
    customer, ts = log.customer[positions], log.ts[positions]
    low, first = int(customer.min()), int(ts.min())
    span = int(ts.max()) - first + 1
    if (int(customer.max()) - low + 1) * span < 2**62:
        order = np.argsort((customer - low) * span + (ts - first))
    else:
        order = np.lexsort((ts, customer))
    rows = positions[order]
    packed = log.flags[rows]
    columns = {name: ((packed >> bit) & 1).astype(np.int8) for bit, name in enumerate(plan.flags)}
    for name, (where, values) in log.values.items():
        hit = np.flatnonzero(columns[_flag_of(plan, name)])
        column = np.full(len(rows), np.nan if name.startswith("v__") else 0.0)
        column[hit] = values[np.searchsorted(where, rows[hit])]
        columns[name] = column
    return Signals(customer[order], ts[order], rows, columns, log.strings)


def _per_customer_range(
    events: pa.Table | str | Path,
    features: FeatureSet,
    work: Callable[[Signals, pa.Array, SignalPlan], pa.Table],
    customer_ids: Sequence[int] | None,
    batch_rows: int,
    workers: int,
    on_range: RangeProgress | None = None,
) -> list[pa.Table]:
    """``work`` over each range of whole customers, sorted, in ``workers`` threads;
    ``on_range(done, total)`` is called as ranges finish (in order)."""
    source = duckdb_source(events, required_properties(features.features))
    con = source.backend.con
    table = source.events
    if customer_ids is not None:
        wanted = pa.table({"customer_id": pa.array(sorted(set(customer_ids)), pa.int64())})
        con.register("wanted_customers", wanted)
        table = table.filter(
            table.customer_id.isin(source.backend.table("wanted_customers").customer_id)
        )
    con.execute("SET enable_progress_bar = false")  # a library does not print
    plan = _signal_plan(table, features, source.prop)
    try:
        log, messages = collect_signals(con, plan)
    finally:
        con.close()

    def one_range(positions: Ints) -> pa.Table:
        return work(_sorted_range(log, plan, positions), messages, plan)

    ranges = customer_ranges(log.customer, batch_rows)
    parts = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, part in enumerate(pool.map(one_range, ranges), start=1):
            parts.append(part)
            if on_range is not None:
                on_range(done, len(ranges))
    return parts


def duckdb_transitions(
    events: pa.Table | str | Path,
    model: CompiledModel,
    customer_ids: Sequence[int] | None = None,
    *,
    batch_rows: int = 250_000,
    workers: int = 2,
    on_range: RangeProgress | None = None,
) -> pa.Table:
    """The stage history computed by DuckDB (scan, signals) and NumPy (sort, the rest).

    ``customer_ids`` limits the work to those customers (the incremental update): DuckDB
    joins the log against a small table of them.
    """

    def history(batch: Signals, messages: pa.Array, plan: SignalPlan) -> pa.Table:
        return batch_transitions(batch, messages, model, plan.aliases)

    parts = _per_customer_range(
        events, model.feature_set, history, customer_ids, batch_rows, workers, on_range
    )
    return pa.concat_tables([TRANSITION_SCHEMA.empty_table(), *parts])


def duckdb_features(
    events: pa.Table | str | Path,
    features: FeatureSet,
    wanted: Sequence[str],
    *,
    batch_rows: int = 250_000,
    workers: int = 2,
) -> pa.Table:
    """The ``wanted`` features at every instant of every customer, sorted by customer and
    time, with ``is_event`` and ``cause_message_id``: what ``plan.feature_table`` gives the
    other engines (health scores are computed from it)."""

    def rows(batch: Signals, messages: pa.Array, plan: SignalPlan) -> pa.Table:
        return batch_features(batch, messages, features, plan.aliases, wanted)

    parts = _per_customer_range(events, features, rows, None, batch_rows, workers)
    return pa.concat_tables([feature_schema(features, wanted).empty_table(), *parts])
