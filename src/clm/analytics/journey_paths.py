"""The touchpoints of every journey, and what the attribution models count over them, in NumPy.

The engine returns two flat tables: the touchpoints sorted by (customer, time, message id) and
the journeys (stays). Each journey's touchpoints are then one contiguous slice of the sorted
touchpoints, found by a binary search on (customer, time): an as-of lookup instead of the
range join of journeys x touchpoints that the engine used to do (5.5M journeys x 15M
touchpoints at 1M customers, then four windows over the joined rows). Every count the
models need (journeys, paths, last touches, rule-based shares, reach, channel sets) is then a
``bincount`` over the slices: one pass, no Python loop per journey.

Positions within a journey follow the touchpoints' order (time, then message id), as the
engine's windows did; shares and counts are the same numbers (sums may differ in the last bit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from clm.analytics.attribution_models import START

Ints = npt.NDArray[np.int64]
DAY = 86_400
RULES = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
MAX_SET_VALUES = 16  # a journey's set of values as bits, counted per set up to this many
STILL = np.iinfo(np.int64).max  # ``moved_at`` of a stay still going


@dataclass
class Touchpoints:
    """Touchpoints sorted by (customer, time, message id); ``code`` indexes ``values``
    (sorted, so code order is value order). ``customers`` are the distinct customers in
    order and ``block_end`` where each customer's touchpoints end. ``key`` is the sorted
    (customer rank, time) key that the journeys' windows are searched in: ``rank * width +
    ts - origin``, with ``origin`` one second before the first touchpoint and ``width`` the
    span plus two, so a bound outside the span, clipped to it, still sorts right.

    Built once, it can be kept (a DuckDB or Spark source keeps the whole log's, sorted) and cut
    at each report's ``until`` (``before``)."""

    ts: Ints
    code: Ints
    values: list[str]
    customers: Ints
    block_end: Ints
    key: Ints
    origin: int
    width: int

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Touchpoints:
        """From ``customer_id, touch_ts, value, touch_id`` sorted by the engine on
        (customer_id, touch_ts): sorting on two integers in the engine is cheap, and the rare
        touchpoints of one customer at the same second are put in message id order here."""
        encoded = _encoded(table.column("value"))
        names = encoded.dictionary.to_pylist()
        order = np.argsort(np.array(names, dtype=object), kind="stable")
        rank = np.empty(len(names), dtype=np.int64)
        rank[order] = np.arange(len(names))
        indices = _codes(encoded)
        customer, ts = _ints(table.column("customer_id")), _ints(table.column("touch_ts"))
        code = rank[indices] if len(names) else indices
        same = (customer[1:] == customer[:-1]) & (ts[1:] == ts[:-1])
        if same.any():
            code = _ties_by_message_id(code, same, table.column("touch_id"))
        return cls.from_sorted(customer, ts, code, [names[i] for i in order])

    @classmethod
    def from_sorted(cls, customer: Ints, ts: Ints, code: Ints, values: list[str]) -> Touchpoints:
        """From arrays already in (customer, time, message id) order."""
        new = np.empty(len(customer), dtype=bool)
        new[:1] = True
        np.not_equal(customer[1:], customer[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        origin = int(ts.min()) - 1 if len(ts) else 0
        width = int(ts.max()) - origin + 2 if len(ts) else 1
        if len(starts) * width >= 2**62:
            raise ValueError("touchpoints span too long to index")
        key = np.cumsum(new, dtype=np.int64)
        key -= 1
        key *= width
        key += ts
        key -= origin
        return cls(
            ts=ts, code=code, values=values, customers=customer[starts],
            block_end=np.append(starts[1:], len(customer)).astype(np.int64), key=key,
            origin=origin, width=width,
        )  # fmt: skip

    def firsts(self) -> pa.Table:
        """``customer_id, first_ts, value``: each customer's first touchpoint (by time, then
        message id), one row per customer in customer order."""
        starts = np.zeros(len(self.customers), np.int64)
        starts[1:] = self.block_end[: len(self.customers) - 1]
        values = pa.array(self.values, pa.string()).take(pa.array(self.code[starts]))
        return pa.table({
            "customer_id": pa.array(self.customers, pa.int64()),
            "first_ts": pa.array(self.ts[starts], pa.int64()),
            "value": values,
        })  # fmt: skip

    def before(self, until: int) -> Touchpoints:
        """The touchpoints before ``until`` (this object when all are)."""
        if not len(self.ts) or int(self.ts.max()) < until:
            return self
        keep = self.ts < until
        customer = np.repeat(self.customers, np.diff(self.block_end, prepend=0))
        return Touchpoints.from_sorted(customer[keep], self.ts[keep], self.code[keep], self.values)


def _ties_by_message_id(code: Ints, same: npt.NDArray[np.bool_], ids: pa.ChunkedArray) -> Ints:
    """``code`` with each run of touchpoints at the same (customer, second) in message id
    order (``same[i]``: touchpoint i + 1 ties with i)."""
    tied = np.zeros(len(code), dtype=bool)
    tied[:-1] |= same
    tied[1:] |= same
    at = np.flatnonzero(tied)
    run = np.cumsum(~np.concatenate([[False], same])[at])  # a new run where i ties no earlier
    runs = pa.table({"run": run, "id": ids.take(pa.array(at))})
    within = pc.sort_indices(runs, sort_keys=[("run", "ascending"), ("id", "ascending")])
    fixed = code.copy()
    fixed[at] = code[at[within.to_numpy()]]
    return fixed


@dataclass
class Journeys:
    """One row per journey, sorted by customer and start: customer, start, when it moved
    (``STILL`` while it lasts), and its (stage, outcome) as an index into ``keys`` (outcome:
    the next stage when it moved, else None)."""

    customer: Ints
    start: Ints
    moved_at: Ints
    group: Ints
    keys: list[tuple[str, str | None]]

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Journeys:
        """From ``customer_id, start_ts, end_ts, stage, next_stage`` (end and next stage null
        while it lasts), every row a journey."""
        return Stays.from_arrow(table).journeys()


@dataclass
class Stays:
    """Stays in a stage sorted by customer and start: when each moved (``STILL`` while it
    lasts), its stage and the next one as codes into ``stages`` and ``targets`` (-1 while it
    lasts).

    Built once from the whole stage history, they can be kept (by a DuckDB or Spark source)
    and cut to each report's period (``journeys``)."""

    customer: Ints
    start: Ints
    moved_at: Ints
    stage: Ints
    target: Ints
    stages: list[str]
    targets: list[str]
    _whole: Journeys | None = field(default=None, init=False, repr=False)
    _span: tuple[int, int] = field(default=(0, 0), init=False, repr=False)  # first move, last event

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Stays:
        """From ``customer_id, start_ts, end_ts, stage, next_stage`` (end and next stage null
        while it lasts)."""
        customer, start = _ints(table.column("customer_id")), _ints(table.column("start_ts"))
        order = _order(customer, start)  # by customer and start: the binary searches then
        # walk the touchpoints in order (5-20x faster than probing them at random)
        stage = _encoded(table.column("stage"))
        target = _encoded(table.column("next_stage"))
        end = _ints(pc.fill_null(table.column("end_ts"), STILL))
        return cls(
            customer=customer[order], start=start[order], moved_at=end[order],
            stage=_codes(stage)[order], target=_codes(target)[order],
            stages=stage.dictionary.to_pylist(), targets=target.dictionary.to_pylist(),
        )  # fmt: skip

    def journeys(self, since: int | None = None, until: int | None = None,
                 stage: str | None = None) -> Journeys:  # fmt: skip
        """The stays that overlap ``[since, until)`` (of ``stage`` only, if given), as seen at
        ``until``: a stay that moved at or after ``until`` is still going then (no outcome),
        one that started at or after it is not there yet. A period that cuts nothing (the
        default: the whole log) returns the same object each time."""
        moved_at, target = self.moved_at, self.target
        if self._whole is None:
            moves = moved_at[moved_at != STILL]
            self._span = (
                int(moves.min()) if len(moves) else STILL,
                max(
                    int(moves.max()) if len(moves) else -STILL, int(self.start.max(initial=-STILL))
                ),
            )
            self._whole = self._grouped(moved_at, target, None)
        first_move, last = self._span
        cuts = (until is not None and last >= until) or (since is not None and first_move < since)
        if not cuts and stage is None:
            return self._whole
        keep = np.ones(len(moved_at), dtype=bool)
        if until is not None:
            late = moved_at >= until  # a stay still going (STILL) stays so
            moved_at = np.where(late, STILL, moved_at)
            target = np.where(late, -1, target)
            keep &= self.start < until
        if since is not None:
            keep &= moved_at >= since  # still going (STILL), or moved within the period
        if stage is not None:
            keep &= self.stage == (self.stages.index(stage) if stage in self.stages else -2)
        return self._grouped(moved_at, target, keep)

    def _grouped(
        self, moved_at: Ints, target: Ints, keep: npt.NDArray[np.bool_] | None
    ) -> Journeys:
        customer, start, code = self.customer, self.start, self.stage
        if keep is not None:
            customer, start, moved_at = customer[keep], start[keep], moved_at[keep]
            code, target = code[keep], target[keep]
        width = len(self.targets) + 1
        codes = code * width + target + 1
        present = np.flatnonzero(np.bincount(codes, minlength=1))
        dense = np.zeros(int(codes.max()) + 1 if len(codes) else 1, dtype=np.int64)
        dense[present] = np.arange(len(present))
        keys = [(self.stages[k // width], self.targets[k % width - 1] if k % width else None)
                for k in present.tolist()]  # fmt: skip
        return Journeys(customer=customer, start=start, moved_at=moved_at, group=dense[codes],
                        keys=keys)  # fmt: skip


def _order(customer: Ints, ts: Ints) -> Ints:
    """The permutation that sorts rows by (customer, ts)."""
    if not len(customer):
        return np.zeros(0, dtype=np.int64)
    c0, t0 = int(customer.min()), int(ts.min())
    width = int(ts.max()) - t0 + 1
    if (int(customer.max()) - c0 + 1) * width < 2**62:
        return np.argsort((customer - c0) * width + (ts - t0), kind="stable")
    return np.lexsort((ts, customer))


def _encoded(column: pa.ChunkedArray) -> pa.DictionaryArray:
    array = column.combine_chunks()
    if isinstance(array, pa.DictionaryArray):
        array = array.cast(pa.string())
    encoded: pa.DictionaryArray = array.dictionary_encode()
    return encoded


def _codes(encoded: pa.DictionaryArray) -> Ints:
    """The dictionary indices, -1 for null."""
    return np.asarray(encoded.indices.fill_null(-1).to_numpy(), dtype=np.int64)


def _ints(column: pa.ChunkedArray) -> Ints:
    return np.asarray(column.to_numpy(), dtype=np.int64)


@dataclass
class Slices:
    """Each journey's end (the module docstring of ``attribution``) and its touchpoints
    ``touches.*[lo:hi]`` in the lookback window ``[end - lookback, end]``."""

    end: Ints
    lo: Ints
    hi: Ints


def journey_slices(touches: Touchpoints, journeys: Journeys, lookback: int) -> Slices:
    """Where each journey's touchpoints lie in the sorted touchpoints.

    A journey that moved ends at the move; one still going ends at the customer's last
    touchpoint (all are before ``until``) or at its start if that is later.
    """
    customers = touches.customers
    if not len(customers):
        end = np.where(journeys.moved_at == STILL, journeys.start, journeys.moved_at)
        zero = np.zeros(len(end), dtype=np.int64)
        return Slices(end, zero, zero)
    found = np.searchsorted(customers, journeys.customer)  # journeys are sorted: fast
    rank = np.minimum(found, len(customers) - 1)
    known = customers[rank] == journeys.customer  # the customer has touchpoints
    last_touch = touches.ts[touches.block_end[rank] - 1]
    end = np.maximum(journeys.start, np.where(known, last_touch, journeys.start))
    np.copyto(end, journeys.moved_at, where=journeys.moved_at != STILL)
    # window bounds on the touchpoints' sorted key, clipped to their span; a customer
    # without touchpoints gets an empty window
    base = rank * touches.width - touches.origin
    low, high = touches.origin, touches.origin + touches.width - 1
    bound = end - lookback
    np.maximum(bound, low, out=bound)
    np.minimum(bound, high, out=bound)
    bound += base
    lo = np.searchsorted(touches.key, bound, side="left")
    np.maximum(end, low, out=bound)
    np.minimum(bound, high, out=bound)
    bound += base
    hi = np.searchsorted(touches.key, bound, side="right")
    np.copyto(hi, lo, where=~known)
    return Slices(end, lo, hi)


@dataclass
class PathCounts:
    """What the attribution report reads, as the rows the engine's group-bys used to return
    (keys ``stage``, ``outcome`` and ``value`` / ``prev`` / ``mask``)."""

    totals: list[dict[str, Any]]
    touched: dict[tuple[str, str | None], int]
    steps: list[dict[str, Any]]
    ends: list[dict[str, Any]]
    credits: list[dict[str, Any]]
    reach: list[dict[str, Any]]
    masks: list[dict[str, Any]] | None
    values: list[str]


def path_counts(
    touches: Touchpoints,
    journeys: Journeys,
    lookback_days: float,
    half_life_days: float,
    max_shapley_channels: int | None,
) -> PathCounts:
    """Every count of the attribution report, per (stage, outcome) of the journeys.

    ``max_shapley_channels`` None skips the rule-based shares, reach and channel sets (the
    Markov model alone needs only journeys, paths and last touches)."""
    slices = journey_slices(touches, journeys, int(lookback_days * DAY))
    n = slices.hi - slices.lo
    keys, group = journeys.keys, journeys.group
    groups, v = len(keys), len(touches.values)
    has = n > 0
    totals = np.bincount(group, minlength=groups)
    touched = np.bincount(group[has], minlength=groups)
    # the touchpoints in touched journeys, expanded to one row each: a journey's rows are
    # consecutive, from ``first`` to ``last``, in the touchpoints' order
    counts = n[has]
    first = np.cumsum(counts) - counts
    last = first + counts - 1
    journey = np.repeat(np.flatnonzero(has), counts)
    index = np.repeat(slices.lo[has] - first, counts)
    index += np.arange(len(index))
    code = touches.code[index]
    g = group[journey]
    # the state before each row: the previous row, or START (v) at a journey's first
    prev = np.empty_like(code)
    prev[1:] = code[:-1]
    prev[first] = v
    step_counts = np.bincount((g * (v + 1) + prev) * v + code, minlength=groups * (v + 1) * v)
    end_counts = np.bincount(group[has] * v + code[last], minlength=groups * v)
    names = [*touches.values, START]
    result = PathCounts(
        totals=[_key_row(keys[i], journeys=int(c)) for i, c in enumerate(totals)],
        touched={keys[i]: int(c) for i, c in enumerate(touched)},
        steps=[
            _key_row(keys[i // ((v + 1) * v)], value=names[i % v],
                     prev=names[i // v % (v + 1)], n=int(step_counts[i]))
            for i in np.flatnonzero(step_counts)
        ],
        ends=[
            _key_row(keys[i // v], value=names[i % v], n=int(end_counts[i]))
            for i in np.flatnonzero(end_counts)
        ],
        credits=[], reach=[], masks=None, values=[],
    )  # fmt: skip
    if max_shapley_channels is None:
        return result
    result.credits = _credits(touches, journeys, slices, (journey, index, code, g), half_life_days)
    present = np.flatnonzero(np.bincount(code, minlength=v))  # values some journey reached
    result.values = [names[c] for c in present]
    if len(present) > MAX_SET_VALUES:
        pair = np.unique(journey * v + code)
        reached = np.bincount(group[pair // v] * v + pair % v, minlength=groups * v)
        result.reach = [
            _key_row(keys[i // v], value=names[i % v], journeys=int(reached[i]))
            for i in np.flatnonzero(reached)
        ]
        return result
    # journeys per (stage, outcome, set of values reached), the set as bits in the order of
    # ``present``; reach (journeys per value) adds up the sets that hold the value
    width = 1 << len(present)
    combined = group[has] * width + _value_sets(code, first, present)
    if groups * width <= 1 << 20:
        tally = np.bincount(combined, minlength=groups * width)
        unique = np.flatnonzero(tally)
        count = tally[unique]
    else:
        unique, count = np.unique(combined, return_counts=True)
    set_group, set_bits = unique // width, unique % width
    reached = np.zeros(groups * v, dtype=np.int64)
    for bit, c in enumerate(present.tolist()):
        holds = (set_bits >> bit) & 1 == 1
        np.add.at(reached, set_group[holds] * v + c, count[holds])
    result.reach = [
        _key_row(keys[i // v], value=names[i % v], journeys=int(reached[i]))
        for i in np.flatnonzero(reached)
    ]
    if len(present) + 1 <= max_shapley_channels:
        result.masks = [
            _key_row(keys[int(k)], mask=int(b), n=int(c))
            for k, b, c in zip(set_group, set_bits, count, strict=True)
        ]
    return result


def _credits(touches: Touchpoints, journeys: Journeys, slices: Slices,
             rows: tuple[Ints, Ints, Ints, Ints],
             half_life_days: float) -> list[dict[str, Any]]:  # fmt: skip
    """The five rule-based shares of each converted journey's touchpoints, summed per (stage,
    outcome, value); ``rows`` are the expanded touchpoints (journey, touchpoint index, code,
    group)."""
    keys, v = journeys.keys, len(touches.values)
    cells = len(keys) * v
    moved = np.array([o is not None for _, o in keys], dtype=bool)
    journey, index, code, g = (a[moved[rows[3]]] for a in rows)
    size = (slices.hi - slices.lo)[journey].astype(np.float64)
    is_first, is_last = index == slices.lo[journey], index == slices.hi[journey] - 1
    decay = np.exp(
        -(slices.end[journey] - touches.ts[index]).astype(np.float64)
        * (math.log(2) / (half_life_days * DAY))
    )
    decay_sum = np.bincount(journey, weights=decay, minlength=len(slices.lo))
    position = 0.2 / np.maximum(size - 2, 1)  # the middle touchpoints of 3 or more
    position[is_first | is_last] = 0.4
    position[size == 2] = 0.5
    position[size == 1] = 1.0
    cell = g * v + code
    sums = {
        "first_touch": np.bincount(cell[is_first], minlength=cells).astype(np.float64),
        "last_touch": np.bincount(cell[is_last], minlength=cells).astype(np.float64),
        "linear": np.bincount(cell, weights=1.0 / size, minlength=cells),
        "time_decay": np.bincount(cell, weights=decay / decay_sum[journey], minlength=cells),
        "position_based": np.bincount(cell, weights=position, minlength=cells),
    }
    names = touches.values
    return [
        _key_row(keys[i // v], value=names[i % v], **{r: float(sums[r][i]) for r in RULES})
        for i in np.flatnonzero(np.bincount(cell, minlength=cells))
    ]


def _value_sets(code: Ints, first: Ints, present: Ints) -> Ints:
    """Each touched journey's set of values (its rows ``first[i]`` on in ``code``), as bits
    in the order of ``present``."""
    if not len(code):
        return np.zeros(0, dtype=np.int64)
    bit_of = np.zeros(int(present.max()) + 1, dtype=np.int64)
    bit_of[present] = np.left_shift(np.int64(1), np.arange(len(present), dtype=np.int64))
    sets: Ints = np.bitwise_or.reduceat(bit_of[code], first)
    return sets


def _key_row(key: tuple[str, str | None], **fields: Any) -> dict[str, Any]:
    return {"stage": key[0], "outcome": key[1], **fields}
