"""The calls that read ``customer_states`` and ``event_counts``, timed in-process (no HTTP):
wall and CPU per call, so the figures mean something on a loaded machine.

    PYTHONPATH=src .venv/bin/python benchmarks/web/state_calls.py \
        /tmp/clm-web-bench/web-100000-2000000.sqlite --repeat 5

Run ``run.py`` first: it builds the database and the state rows (``rebuild_state``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clm.lifecycle import customer_list
from clm.lifecycle.current_state import current_counts
from clm.lifecycle.customer_list import CustomerQuery, SortKey, list_customers
from clm.lifecycle.event_counts import workspace_stats
from clm.store.engine import Database

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_db.py
from _db import add_migrate_option, open_existing


def calls(db: Database, ws: int) -> dict[str, Callable[[], Any]]:
    def page(**kw: Any) -> Callable[[], Any]:
        return lambda: list_customers(db, ws, CustomerQuery(**kw))

    def scanned(q: str) -> Callable[[], Any]:
        """The search as it was before the trigram index: a LIKE over every search text (the
        path PostgreSQL and text under three characters take), for a before/after pair."""
        found = customer_list.search_match

        def call() -> Any:
            customer_list.search_match = lambda _dialect, text: found("postgresql", text)
            try:
                return list_customers(db, ws, CustomerQuery(q=q))
            finally:
                customer_list.search_match = found

        return call

    return {
        "workspace/stats": lambda: workspace_stats(db, ws),
        "lifecycle/counts (now)": lambda: current_counts(db, ws),
        "list, by id": page(),
        "list, search person1234": page(q="person1234"),
        "list, search person1234 (LIKE scan)": scanned("person1234"),
        "list, search 'son12'": page(q="son12"),
        "list, search 'son12' (LIKE scan)": scanned("son12"),
        "list, search 'n1' (LIKE: < 3 chars)": page(q="n1"),
        "list, stage=loyalty": page(stage=["loyalty"]),
        "list, at risk by CLV": page(
            health_state=["at_risk", "unhappy"], sort=SortKey.clv, order="desc"
        ),
        "list, by last seen": page(sort=SortKey.last_seen, order="desc"),
        "list, P(alive) asc, page 20": page(sort=SortKey.p_alive, page=20),
        "list, RFM Champions by revenue": page(
            rfm=["Champions"], sort=SortKey.revenue, order="desc"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path)
    parser.add_argument("--workspace", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    add_migrate_option(parser)
    args = parser.parse_args()
    db = open_existing(f"sqlite:///{args.database}", migrate=args.migrate)
    print(f"load before: {os.getloadavg()[0]:.1f}")
    print(f"{'call':34} {'wall p50':>9} {'wall max':>9} {'cpu p50':>8}  (ms)")
    for name, call in calls(db, args.workspace).items():
        call()  # warm-up
        walls, cpus = [], []
        for _ in range(args.repeat):
            cpu, wall = time.process_time(), time.perf_counter()
            call()
            walls.append(1000 * (time.perf_counter() - wall))
            cpus.append(1000 * (time.process_time() - cpu))
        print(f"{name:34} {statistics.median(walls):9.0f} {max(walls):9.0f} "
              f"{statistics.median(cpus):8.0f}")  # fmt: skip
    print(f"load after: {os.getloadavg()[0]:.1f}")
    db.dispose()


if __name__ == "__main__":
    main()
