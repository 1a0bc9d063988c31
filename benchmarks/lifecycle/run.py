"""Lifecycle benchmark: full recompute and incremental update of the classic stage model.

    .venv/bin/python benchmarks/lifecycle/run.py --customers 1000000 --events 10000000

Generates a synthetic log (vectorised NumPy, written to Parquet), then times:
- DuckDB full recompute (all customers);
- DuckDB incremental: the customers touched by 10,000 new events, recomputed from all their
  events (what ``update_lifecycle`` does), on the full-size log;
- the obvious pandas implementation (per-customer Python over a groupby, the reference logic)
  on the first N customers, against DuckDB on the same events (ratio), and per event
  against the full-size DuckDB run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clm.lifecycle.columnar import duckdb_transitions
from clm.lifecycle.engines import _pg_prop, _sqlite_prop
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


def duckdb_full(path: Path) -> tuple[float, int, float]:
    """DuckDB scans and computes the signals; NumPy sorts and evaluates (``columnar.py``).
    Wall seconds, transitions, CPU seconds of the process (all threads)."""
    model = shipped_model("classic")
    start, cpu = time.perf_counter(), time.process_time()
    result = duckdb_transitions(str(path), model)
    return time.perf_counter() - start, result.num_rows, time.process_time() - cpu


def _duckdb_full_and_peak(path: Path) -> tuple[float, int, float, float]:
    seconds, rows, cpu = duckdb_full(path)
    # VmHWM belongs to this process's own memory map (ru_maxrss would carry the parent's
    # peak over fork and exec)
    status = Path("/proc/self/status").read_text().splitlines()
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return seconds, rows, cpu, peak_kib / 1024


def duckdb_full_alone(path: Path) -> tuple[float, int, float, float]:
    """``duckdb_full`` in a fresh process, so its peak memory is the engine's own (the
    generator's copy of the log lives in this one): seconds, transitions, CPU seconds,
    peak MiB."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_duckdb_full_and_peak, path).result()


def customer_index(table: pa.Table, folder: Path) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The log sorted by customer in a memory-mapped Arrow file, and each customer's rows:
    what an index on the store gives ``update_lifecycle`` (it reads only touched customers)."""
    path = folder / "by_customer.arrow"
    ordered = table.sort_by([("customer_id", "ascending"), ("ts", "ascending")])
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, ordered.schema) as writer:
        writer.write_table(ordered, max_chunksize=1_000_000)
    mapped = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    customers = mapped.column("customer_id").to_numpy()
    ids, first = np.unique(customers, return_index=True)
    return mapped, ids, first


def duckdb_incremental(
    index: tuple[pa.Table, np.ndarray, np.ndarray], touched: np.ndarray
) -> tuple[float, int]:
    """Recompute the touched customers from all their events, as ``update_lifecycle`` does."""
    model = shipped_model("classic")
    mapped, ids, first = index
    start = time.perf_counter()
    at = np.searchsorted(ids, touched)
    found = at[(at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == touched)]
    ends = np.append(first[1:], mapped.num_rows)
    rows: Any = np.concatenate([np.arange(first[i], ends[i]) for i in found]) if len(found) else []
    events = mapped.take(pa.array(rows, pa.int64()))
    result = duckdb_transitions(events, model, touched.tolist())
    return time.perf_counter() - start, result.num_rows


def sql_backend(engine: str, folder: Path) -> tuple[Any, Callable[..., Any]]:
    """An Ibis connection to the benchmark's SQLite file or the local PostgreSQL ``test``
    database, and how a JSON property is read there (shared with the analytics benchmark)."""
    import ibis

    if engine == "sqlite":
        return ibis.sqlite.connect(str(folder / "bench.sqlite")), _sqlite_prop
    return ibis.postgres.connect(host="127.0.0.1", user="postgres", database="test"), _pg_prop


def other_engine(engine: str, table: pa.Table, folder: Path) -> tuple[float, int]:
    """The same Ibis plan on SQLite, PostgreSQL or PySpark (``plan.py``)."""
    model = shipped_model("classic")
    props = required_properties(model.features)
    if engine == "spark":
        from clm.lifecycle.engines import quiet_engines, spark_session, spark_source

        path = folder / "spark.parquet"
        pq.write_table(table, path)
        with quiet_engines():
            session = spark_session(2)
            source = spark_source(session, str(path), props)
            start = time.perf_counter()
            result = transitions(source.events, model, source.prop).to_pyarrow()
        return time.perf_counter() - start, result.num_rows
    backend, prop = sql_backend(engine, folder)
    name = "clm_bench_events"
    data = table
    if engine == "postgres":  # properties as jsonb, as in the store
        backend.raw_sql(f"DROP TABLE IF EXISTS {name}")
    backend.create_table(name, data.to_pandas(), overwrite=True)
    if engine == "postgres":
        backend.raw_sql(
            f"ALTER TABLE {name} ALTER COLUMN properties TYPE jsonb USING properties::jsonb"
        )
    events = backend.table(name)
    start = time.perf_counter()
    result = transitions(events, model, prop).to_pyarrow()
    seconds = time.perf_counter() - start
    if engine == "postgres":
        backend.raw_sql(f"DROP TABLE {name}")
    return seconds, result.num_rows


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


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load() -> str:
    """The 1-minute load average: on a shared 2-core machine, read every figure with it."""
    return f"load {os.getloadavg()[0]:.2f}"


def _log(folder: Path, customers: int, events: int, reuse: bool) -> tuple[pa.Table, Path]:
    """The synthetic log as a table and as Parquet, generated or read back from ``folder``."""
    path = folder / f"events-{customers}-{events}.parquet"
    start = time.perf_counter()
    if reuse and path.exists():
        table = pq.read_table(path)
        print(f"read {table.num_rows:,} events from {path}", flush=True)
        return table, path
    table = generate(customers, events)
    pq.write_table(table, path)
    print(
        f"generated {events:,} events for {customers:,} customers in "
        f"{time.perf_counter() - start:.1f} s ({path})",
        flush=True,
    )
    return table, path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument(
        "--pandas-customers",
        type=int,
        default=20_000,
        help="customers (ids 1..N) the pandas implementation and DuckDB both run on",
    )
    parser.add_argument("--engines", default="", help="also run: sqlite,postgres,spark")
    parser.add_argument(
        "--repeat", type=int, default=1, help="full DuckDB recomputes (each in a fresh process)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder to keep the generated Parquet in and reuse it from (default: a new one)",
    )
    args = parser.parse_args()
    folder = args.data or Path(tempfile.mkdtemp(prefix="clm-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    table, path = _log(folder, args.customers, args.events, args.data is not None)
    print(f"generator peak resident memory: {_peak_mib():.0f} MiB", flush=True)
    seconds = float("inf")
    for _ in range(args.repeat):
        before = _load()
        run_seconds, rows, cpu, engine_peak = duckdb_full_alone(path)
        seconds = min(seconds, run_seconds)
        print(
            f"duckdb full recompute: {run_seconds:.2f} s, CPU {cpu:.2f} s, {rows:,} transitions "
            f"(own process, peak resident memory {engine_peak:.0f} MiB; {before}, "
            f"after {_load()})",
            flush=True,
        )
    index = customer_index(table, folder)
    rng = np.random.default_rng(1)
    touched = np.unique(rng.integers(1, args.customers + 1, 10_000))
    inc, inc_rows = duckdb_incremental(index, touched)
    print(
        f"duckdb incremental (10,000 new events -> {len(touched):,} customers): "
        f"{inc:.2f} s, {inc_rows:,} transitions ({_load()})",
        flush=True,
    )
    for engine in filter(None, args.engines.split(",")):
        e_seconds, e_rows = other_engine(engine, table, folder)
        print(
            f"{engine}: {e_seconds:.2f} s, {e_rows:,} transitions "
            f"(duckdb is {e_seconds / seconds:.1f}x faster; {_load()})",
            flush=True,
        )
    small_ids = pa.array(np.arange(1, args.pandas_customers + 1), pa.int64())
    small = table.filter(pc.is_in(table.column("customer_id"), value_set=small_ids))
    p_seconds, p_rows = pandas_obvious(small)
    start = time.perf_counter()
    same = duckdb_transitions(small, shipped_model("classic"))
    d_seconds = time.perf_counter() - start
    assert same.num_rows == p_rows, (same.num_rows, p_rows)
    per_event_pandas = p_seconds / max(1, small.num_rows)
    per_event_duck = seconds / args.events
    print(
        f"pandas obvious: {p_seconds:.2f} s for {small.num_rows:,} events "
        f"({args.pandas_customers:,} customers, {p_rows:,} transitions); duckdb on the same "
        f"events {d_seconds:.2f} s: {p_seconds / d_seconds:.0f}x faster; per event "
        f"{per_event_pandas * 1e6:.1f} us vs duckdb {per_event_duck * 1e6:.2f} us at full "
        f"size: {per_event_pandas / per_event_duck:.0f}x ({_load()})"
    )


if __name__ == "__main__":
    main()
