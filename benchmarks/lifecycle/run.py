"""Lifecycle benchmark: full recompute and incremental update of the classic stage model.

    .venv/bin/python benchmarks/lifecycle/run.py --customers 1000000 --events 10000000

Generates a synthetic log (vectorised NumPy, written to Parquet), then times:
- DuckDB full recompute (all customers);
- DuckDB incremental: the customers touched by 10,000 new events, recomputed from all their
  events (what ``update_lifecycle`` does), on the full-size log;
- the obvious pandas implementation (per-customer Python over a groupby, the reference logic)
  on a subset, reported per event, and the ratio against DuckDB per event.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from clm.lifecycle.engines import duckdb_source
from clm.lifecycle.loader import shipped_model
from clm.lifecycle.plan import required_properties, transitions
from clm.lifecycle.reference import LogEvent, customer_history

NAMES = np.array(
    [
        "Page Viewed",
        "Order Completed",
        "Signed Up",
        "Referral Given",
        "NPS Survey Answered",
        "Email Opened",
    ]
)
WEIGHTS = np.array([0.55, 0.2, 0.05, 0.03, 0.02, 0.15])
T0 = 1_600_000_000


def generate(customers: int, events: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    customer = rng.integers(1, customers + 1, events)
    ts = T0 + rng.integers(0, 3 * 365 * 86_400, events)
    name = NAMES[rng.choice(len(NAMES), events, p=WEIGHTS)]
    revenue = np.where(name == "Order Completed", rng.gamma(2.0, 30.0, events).round(2), np.nan)
    score = rng.integers(0, 11, events)
    props = np.where(
        name == "NPS Survey Answered",
        np.char.add(np.char.add('{"score": ', score.astype(str)), "}"),
        "{}",
    )
    return pa.table(
        {
            "customer_id": pa.array(customer, pa.int64()),
            "ts": pa.array(ts, pa.int64()),
            "message_id": pa.array(np.char.add("m", np.arange(events).astype(str))),
            "name": pa.array(name),
            "type": pa.array(np.full(events, "track")),
            "channel": pa.array([None] * events, pa.string()),
            "campaign": pa.array([None] * events, pa.string()),
            "source": pa.array([None] * events, pa.string()),
            "revenue": pa.array(revenue, pa.float64(), mask=np.isnan(revenue)),
            "properties": pa.array(props),
        }
    )


def duckdb_full(path: Path) -> tuple[float, int]:
    model = shipped_model("classic")
    start = time.perf_counter()
    source = duckdb_source(str(path), required_properties(model.features))
    result = transitions(source.events, model, source.prop).to_pyarrow()
    return time.perf_counter() - start, result.num_rows


def duckdb_incremental(path: Path, touched: np.ndarray) -> tuple[float, int]:
    model = shipped_model("classic")
    start = time.perf_counter()
    source = duckdb_source(str(path), required_properties(model.features))
    events = source.events.filter(source.events.customer_id.isin(touched.tolist()))
    result = transitions(events, model, source.prop).to_pyarrow()
    return time.perf_counter() - start, result.num_rows


def pandas_obvious(table: pa.Table) -> tuple[float, int]:
    """The obvious implementation: a pandas groupby, each customer's history in Python."""
    model = shipped_model("classic")
    frame = table.to_pandas()
    start = time.perf_counter()
    count = 0
    for customer, group in frame.sort_values("ts").groupby("customer_id"):
        events = [
            LogEvent(
                int(customer),
                int(r.ts),
                r.message_id,
                r.name,
                r.type,
                revenue=None if pd.isna(r.revenue) else float(r.revenue),
                properties=json.loads(r.properties),
            )
            for r in group.itertuples()
        ]
        count += len(customer_history(model, events))
    return time.perf_counter() - start, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--pandas-customers", type=int, default=2_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="clm-bench-"))
    start = time.perf_counter()
    table = generate(args.customers, args.events)
    path = folder / "events.parquet"
    pq.write_table(table, path)
    print(
        f"generated {args.events:,} events for {args.customers:,} customers "
        f"in {time.perf_counter() - start:.1f} s"
    )
    seconds, rows = duckdb_full(path)
    print(f"duckdb full recompute: {seconds:.2f} s, {rows:,} transitions")
    rng = np.random.default_rng(1)
    touched = np.unique(rng.integers(1, args.customers + 1, 10_000))
    inc, inc_rows = duckdb_incremental(path, touched)
    print(
        f"duckdb incremental (10,000 new events -> {len(touched):,} customers): "
        f"{inc:.2f} s, {inc_rows:,} transitions"
    )
    small_ids = pa.array(np.arange(1, args.pandas_customers + 1), pa.int64())
    import pyarrow.compute as pc

    small = table.filter(pc.is_in(table.column("customer_id"), value_set=small_ids))
    p_seconds, _ = pandas_obvious(small)
    per_event_pandas = p_seconds / max(1, small.num_rows)
    per_event_duck = seconds / args.events
    print(
        f"pandas obvious: {p_seconds:.2f} s for {small.num_rows:,} events "
        f"({args.pandas_customers:,} customers); per event {per_event_pandas * 1e6:.1f} us "
        f"vs duckdb {per_event_duck * 1e6:.2f} us: duckdb is "
        f"{per_event_pandas / per_event_duck:.0f}x faster"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
