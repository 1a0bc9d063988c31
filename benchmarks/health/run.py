"""Health benchmark: every customer's current score, column-wise, on DuckDB.

    .venv/bin/python benchmarks/health/run.py --customers 1000000 --events 10000000

Generates a synthetic log (NumPy, written to Parquet; kept with ``--data DIR``), then times,
for the shipped scorecard (16 factors over 22 features), in a fresh process each run:
- the feature snapshot as of "now" (``snapshot.duckdb_snapshot``: DuckDB scans the Parquet and
  aggregates per customer);
- the scores, states, contributions and next due times (``health_current.score_snapshot``:
  NumPy over the snapshot's columns).
Storing the scores is not timed (as in the lifecycle benchmark); ``--store N`` times storing
the first N customers' rows into SQLite separately. Prints wall and CPU seconds, peak memory,
the state counts and the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

NAMES = np.array(
    [
        "Page Viewed",
        "Order Completed",
        "Email Opened",
        "NPS Survey Answered",
        "Ticket Opened",
        "Ticket Resolved",
        "Prediction Scored",
        "Payment Failed",
    ]
)
WEIGHTS = np.array([0.5, 0.2, 0.15, 0.03, 0.04, 0.03, 0.03, 0.02])
T0 = 1_600_000_000
SPAN = 3 * 365 * 86_400


def generate(customers: int, events: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    customer = rng.integers(1, customers + 1, events)
    ts = T0 + rng.integers(0, SPAN, events)
    name = NAMES[rng.choice(len(NAMES), events, p=WEIGHTS)]
    revenue = np.where(name == "Order Completed", rng.gamma(2.0, 30.0, events).round(2), np.nan)
    score = rng.integers(0, 11, events).astype(str)
    alive = rng.random(events).round(3).astype(str)
    props = np.where(
        name == "NPS Survey Answered",
        np.char.add(np.char.add('{"score": ', score), "}"),
        np.where(
            name == "Prediction Scored",
            np.char.add(np.char.add('{"p_alive": ', alive), "}"),
            "{}",
        ),
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


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def score_all(path: str) -> dict[str, Any]:
    """The timed work, in this (fresh) process."""
    from clm.lifecycle.health_current import score_snapshot
    from clm.lifecycle.loader import default_scorecard_text, load_scorecard
    from clm.lifecycle.snapshot import duckdb_snapshot

    card = load_scorecard(default_scorecard_text())
    now = T0 + SPAN
    start, cpu = time.perf_counter(), time.process_time()
    table = duckdb_snapshot(path, card.feature_set, now)
    snapshot = time.perf_counter() - start
    exits = np.zeros(table.num_rows)  # no stage history here: nobody in an exit stage
    batch = score_snapshot(card, table, now, exits)
    total = time.perf_counter() - start
    states = {
        str(k): int(v)
        for k, v in zip(*np.unique(batch.scores.state, return_counts=True), strict=True)
    }
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    return {
        "customers": table.num_rows,
        "snapshot_s": round(snapshot, 2),
        "scoring_s": round(total - snapshot, 2),
        "total_s": round(total, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "peak_mib": round(peak),
        "states": states,
        "due_within_a_day": int(np.sum(batch.next_due <= now + 86_400)),
    }


def store_some(path: str, count: int) -> float:
    """Seconds to store the first ``count`` customers' scores into a fresh SQLite store."""
    from clm.lifecycle.health_current import _store, compute_scores
    from clm.lifecycle.health_inputs import get_scorecard
    from clm.store.engine import Database
    from clm.store.workspaces import create_workspace

    folder = tempfile.mkdtemp(prefix="health-bench-")
    db = Database.open(f"sqlite:///{folder}/clm.sqlite")
    with db.transaction() as session:
        workspace_id = create_workspace(session, "bench").id
    definition_id, card = get_scorecard(db, workspace_id)
    events = pq.read_table(path)
    events = events.filter(pa.compute.less_equal(events.column("customer_id"), count))
    now = T0 + SPAN
    batch = compute_scores(
        db, workspace_id, card, now, engine="duckdb", events=events,
        exit_stage=lambda c: np.zeros(len(c)),
    )  # fmt: skip
    from datetime import UTC, datetime

    start = time.perf_counter()
    _store(db, workspace_id, definition_id, batch, datetime.fromtimestamp(now, UTC), False)
    return time.perf_counter() - start


def fresh(fn: Any, *args: Any) -> Any:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, default=None, help="keep/reuse the Parquet here")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--store", type=int, default=0, help="also time storing N customers")
    args = parser.parse_args()
    folder = args.data or Path(tempfile.mkdtemp(prefix="health-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"log_{args.customers}_{args.events}.parquet"
    if not path.exists():
        started = time.perf_counter()
        pq.write_table(generate(args.customers, args.events), path)
        print(f"generated {path} in {time.perf_counter() - started:.1f} s")
    print(f"machine: {os.cpu_count()} cores; load before: {_load()}")
    for run in range(1, args.repeat + 1):
        result = fresh(score_all, str(path))
        print(f"run {run}: " + json.dumps(result) + f"; load after: {_load()}")
    if args.store:
        seconds = fresh(store_some, str(path), args.store)
        print(f"storing {args.store:,} customers' scores into SQLite: {seconds:.2f} s")


if __name__ == "__main__":
    main()
