"""Same output before and after a speed change: run reports, save their JSON, compare field by
field, with wall and CPU seconds per run.

    # once: build the 1M source (as run.py does) and keep its tables in a DuckDB file
    python benchmarks/analytics/same_json.py keep --data-dir /work/bench-data/analytics-1m \
        --file /tmp/src1m.duckdb
    # each side (PYTHONPATH=<old or new checkout>/src): 1M on DuckDB, or a demo on SQLite
    python benchmarks/analytics/same_json.py run --kept /tmp/src1m.duckdb --out new-1m.json
    python benchmarks/analytics/same_json.py run --demo sqlite:////tmp/demo.sqlite --out new.json
    python benchmarks/analytics/same_json.py compare old-1m.json new-1m.json

``run`` pays the default period's bounds before timing (the first report on a source pays
them; in run.py the funnel), then computes what the code keeps per source (``prepare_source``,
as run.py does; timed apart), then each report ``--repeat`` times. ``--demo`` opens the
database without migrating it (a shared demo must not be changed) and a fresh source per run,
as ``clm report NAME`` does. ``compare`` exits 1 and prints each difference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import ibis
import pyarrow.parquet as pq

from clm.analytics import REPORTS, ReportSource, duckdb_report_source, parse_query, run_on
from clm.lifecycle.loader import shipped_model

TABLES = ("analytics_events", "analytics_transitions")


def timed(label: str, step: Callable[[], Any]) -> Any:
    wall, cpu = time.perf_counter(), time.process_time()
    result = step()
    print(f"{label:<24} {time.perf_counter() - wall:8.2f} s  (CPU {time.process_time() - cpu:6.2f}"
          f" s)  load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    return result


def _quoted(path: Path) -> str:
    """A file name as an SQL string literal (ATTACH takes no parameters)."""
    return "'" + str(path).replace("'", "''") + "'"


def keep(data_dir: Path, file: Path, customers: int, events: int) -> None:
    label = f"{customers}_{events}"
    history = pq.read_table(data_dir / f"transitions_{label}.parquet")
    source = duckdb_report_source(
        data_dir / f"events_{label}.parquet", history, shipped_model("classic")
    )
    con = source.backend.con
    con.execute(f"ATTACH {_quoted(file)} AS keep")
    for table in TABLES:
        con.execute(f"CREATE TABLE keep.{table} AS SELECT * FROM {table}")
    con.execute("DETACH keep")


def kept_source(file: Path) -> ReportSource:
    """The kept tables copied into memory, with the settings of ``duckdb_report_source``."""
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"ATTACH {_quoted(file)} AS keep (READ_ONLY)")
    for table in TABLES:
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM keep.{table}")
    con.execute("DETACH keep")
    backend = ibis.duckdb.from_connection(con)
    return ReportSource(
        backend.table(TABLES[0]), backend.table(TABLES[1]), shipped_model("classic"), "duckdb",
        backend,
    )  # fmt: skip


def run(args: argparse.Namespace) -> None:
    params = json.loads(args.params)
    out: dict[str, Any] = {}
    if args.kept:
        source = timed("open kept tables", lambda: kept_source(args.kept))
        timed("bounds", source.bounds)
        try:
            from clm.analytics import prepare_source
        except ImportError:  # code from before sources kept anything
            pass
        else:
            timed("prepare_source", lambda: prepare_source(source))
        from run import SPEND  # the benchmark's spend rows: acquisition's CAC and payback too

        for name in args.reports.split(","):
            query = parse_query(REPORTS[name].query, params)
            extra = (SPEND,) if name == "acquisition" else ()
            for _ in range(args.repeat):
                out[name] = timed(name, lambda: REPORTS[name].run(source, query, *extra))  # noqa: B023
    else:
        from clm.analytics import open_report_source
        from clm.store.engine import Database
        from clm.store.workspaces import get_workspace

        db = Database.open(args.demo, run_migrations=False)
        with db.session() as session:
            workspace_id = get_workspace(session, args.workspace).id
        for name in args.reports.split(","):
            query = parse_query(REPORTS[name].query, params)

            def fresh(name: str = name, query: Any = query) -> Any:
                sql = open_report_source(db, workspace_id, "sql")
                try:
                    return run_on(sql, name, query)
                finally:
                    sql.close()

            for _ in range(args.repeat):
                out[name] = timed(name, fresh)
    dumped = {name: report.model_dump(mode="json") for name, report in out.items()}
    args.out.write_text(json.dumps(dumped, indent=1, sort_keys=True))


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Every field that differs (values and types exactly: both sides round the same way)."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = [f"{where}.{k}: only on one side" for k in sorted(set(a) ^ set(b))]
        for key in sorted(set(a) & set(b)):
            found += differences(a[key], b[key], f"{where}.{key}")
        return found
    if isinstance(a, list) and isinstance(b, list):
        found = [f"{where}: {len(a)} != {len(b)} items"] if len(a) != len(b) else []
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found += differences(x, y, f"{where}[{i}]")
        return found
    return [] if a == b and type(a) is type(b) else [f"{where}: {a!r} != {b!r}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    keeping = commands.add_parser("keep", help="build the DuckDB source once, keep its tables")
    keeping.add_argument("--data-dir", type=Path, required=True, help="run.py's --data-dir")
    keeping.add_argument("--file", type=Path, required=True)
    keeping.add_argument("--customers", type=int, default=1_000_000)
    keeping.add_argument("--events", type=int, default=20_000_000)
    running = commands.add_parser("run", help="run reports, save their JSON")
    where = running.add_mutually_exclusive_group(required=True)
    where.add_argument("--kept", type=Path, help="a file written by keep (DuckDB)")
    where.add_argument("--demo", help="a demo database URL (SQLite), not migrated")
    running.add_argument("--workspace", default="cdnow")
    running.add_argument("--reports", default="churn_retention")
    running.add_argument("--params", default="{}", help="the query as JSON")
    running.add_argument("--repeat", type=int, default=1)
    running.add_argument("--out", type=Path, required=True)
    comparing = commands.add_parser("compare", help="compare two saved outputs")
    comparing.add_argument("files", type=Path, nargs=2)
    args = parser.parse_args()
    if args.command == "keep":
        keep(args.data_dir, args.file, args.customers, args.events)
    elif args.command == "run":
        run(args)
    else:
        a, b = (json.loads(path.read_text()) for path in args.files)
        found = differences(a, b)
        print("\n".join(found) if found else "identical")
        sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
