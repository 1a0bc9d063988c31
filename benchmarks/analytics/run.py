"""Analytics benchmark: every report on DuckDB at scale, SQLite and PostgreSQL at 100k customers,
and the obvious pandas implementation of every report beside it, with ratios printed in the
same run.

    .venv/bin/python benchmarks/analytics/run.py --customers 1000000 --events 20000000
    .venv/bin/python benchmarks/analytics/run.py --demo sqlite:///DATA/demo/clm.sqlite

``--demo URL`` instead runs every report on a demo's database (``clm demo --no-serve``) on the
``sql`` engine, one fresh source per report as ``clm report NAME`` does, then the pandas peers.

The pandas peers (``peers.py``, ``peers_attribution.py``, ``peers_economics.py``: read the log
with pandas, then groupby/merge from each report's definitions, no CLM code) run on the same
log; each one's figures are checked equal to its report's before its time is printed, and a
difference stops the run naming the field. Markov and Shapley credits stay report-only.

The log comes from the lifecycle benchmark's generator (benchmarks/lifecycle/run.py), with a
channel (one of 5) on visits, sign-ups and email opens so attribution has touchpoints; the
stage history is the classic model's, computed by the lifecycle DuckDB engine (not timed).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clm.analytics import (
    REPORTS,
    AttributionQuery,
    ReportSource,
    duckdb_report_source,
    markov_attribution,
    parse_query,
    prepare_source,
)
from clm.analytics.calendar import period_of, period_start
from clm.analytics.source import EVENT_COLUMNS, NUMBER_PROPERTIES, STRING_PROPERTIES
from clm.analytics.spend import SpendRow
from clm.lifecycle.columnar import duckdb_transitions
from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.loader import shipped_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_db.py
from _db import add_migrate_option, open_existing


@cache
def _lifecycle_benchmark() -> Any:
    """The lifecycle benchmark script (its log generator and SQL connections), from its file."""
    path = Path(__file__).resolve().parents[1] / "lifecycle" / "run.py"
    spec = importlib.util.spec_from_file_location("lifecycle_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lifecycle_generator() -> Callable[[int, int], pa.Table]:
    generate: Callable[[int, int], pa.Table] = _lifecycle_benchmark().generate
    return generate


CHANNELS = np.array(["email", "search", "social", "display", "referral"])
TOUCH_NAMES = ("Page Viewed", "Signed Up", "Email Opened")
PARAMS: dict[str, dict[str, Any]] = {"attribution": {"dimension": "channel"}}
SPEND = [SpendRow(str(c), "", 1_600_000_000, 1_700_000_000, 100_000.0) for c in CHANNELS]


def with_channels(table: pa.Table, seed: int = 11) -> pa.Table:
    rng = np.random.default_rng(seed)
    touch = pc.is_in(table["name"], pa.array(TOUCH_NAMES)).to_numpy(zero_copy_only=False)
    picked = CHANNELS[rng.integers(0, len(CHANNELS), table.num_rows)]
    channel = pa.array(np.where(touch, picked, None), pa.string())
    return table.set_column(table.schema.get_field_index("channel"), "channel", channel)


def timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def timed_cpu(run: Callable[[], Any]) -> tuple[float, float]:
    """(wall, CPU) seconds; CPU counts every thread of this process (DuckDB's too), so it is
    the figure to compare between runs on a shared machine."""
    start, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - start, time.process_time() - cpu


def run_reports(source: ReportSource, label: str, names: list[str], results: dict[str, float],
                reports: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Time every report (wall and CPU into ``results``), keeping each in ``reports``."""
    steps: list[tuple[str, Callable[[], Any]]] = [("prepare", partial(prepare_source, source))]
    for name in names:
        spec = REPORTS[name]
        query = parse_query(spec.query, PARAMS.get(name, {}))
        extra = (SPEND,) if name == "acquisition" else ()
        steps.append((name, partial(spec.run, source, query, *extra)))
        if name == "attribution":  # the Markov model alone, journeys and touchpoints included
            markov_query = parse_query(AttributionQuery, PARAMS.get(name, {}))
            steps.append(("markov alone", partial(markov_attribution, source, markov_query)))
    for name, step in steps:
        kept: list[Any] = []
        seconds, cpu = timed_cpu(lambda: kept.append(step()))  # noqa: B023
        results[f"{label} {name}"], results[f"{label} {name} cpu"] = seconds, cpu
        if reports is not None:
            reports[name] = kept[0]
        print(f"{label:>12} {name:<16} {seconds:8.2f} s  (CPU {cpu:6.2f} s)", flush=True)


def sql_source(engine: str, events: pa.Table, history: pa.Table, model: CompiledModel,
               folder: Path) -> ReportSource:  # fmt: skip
    """The events (properties as JSON text, as in the store) and the stage history loaded into
    SQLite or PostgreSQL, read through the same column mapping as ``report_source``."""
    backend, prop = _lifecycle_benchmark().sql_backend(engine, folder)
    for name, data in (("bench_events", events), ("bench_transitions", history)):
        backend.create_table(name, data.to_pandas(), overwrite=True)
    if engine == "postgres":
        backend.raw_sql(
            "ALTER TABLE bench_events ALTER COLUMN properties TYPE jsonb USING properties::jsonb"
        )
        backend.raw_sql("ANALYZE bench_events; ANALYZE bench_transitions")
    raw = backend.table("bench_events")
    typed = raw.select(
        *[raw[c] for c in EVENT_COLUMNS],
        **{k: prop(raw, k, "number").cast("float64") for k in NUMBER_PROPERTIES},
        **{k: prop(raw, k, "string").cast("string") for k in STRING_PROPERTIES},
    )
    return ReportSource(typed, backend.table("bench_transitions"), model, "sql", backend)


PEERS = ("funnel", "churn_retention", "cohorts", "rfm", "attribution", "acquisition",
         "feedback")  # fmt: skip


def pandas_peer(name: str) -> Callable[[Any], Any]:
    """The obvious pandas implementation of a report (``peers*.py``, beside this script)."""
    import peers
    import peers_attribution
    import peers_economics

    for module in (peers, peers_attribution, peers_economics):
        if hasattr(module, name):
            found: Callable[[Any], Any] = getattr(module, name)
            return found
    raise KeyError(name)


def compare_with_pandas(path: Path, history: pa.Table, model: CompiledModel, label: str,
                        results: dict[str, float], reports: dict[str, Any]) -> None:  # fmt: skip
    """Every report's pandas peer on the same log, checked equal to the report, then timed
    against it (the cohorts report counting the prepare step it reads)."""
    import peers

    stages = [s.name for s in model.stages if not s.exit]
    exits = [s.name for s in model.stages if s.exit]
    spend = pd.DataFrame([r.__dict__ for r in SPEND])
    log: list[Any] = []
    took, cpu = timed_cpu(lambda: log.append(peers.read_files(path, history, stages, exits, spend)))
    print(f"{'pandas ' + label:>12} {'read the log':<16} {took:8.2f} s  (CPU {cpu:6.2f} s)",
          flush=True)  # fmt: skip
    for name in (n for n in PEERS if n in reports):
        figures: list[Any] = []
        seconds, cpu = timed_cpu(lambda: figures.append(pandas_peer(name)(log[0])))  # noqa: B023
        same(report_figures(name, reports[name]), figures[0], name)
        ours, ours_cpu = results[f"duckdb {label} {name}"], results[f"duckdb {label} {name} cpu"]
        note = ""
        if name == "cohorts":  # the report reads the monthly activity that ``prepare`` keeps
            ours += results[f"duckdb {label} prepare"]
            ours_cpu += results[f"duckdb {label} prepare cpu"]
            note = " counting the prepare step"
        print(f"{'pandas ' + label:>12} {name:<16} {seconds:8.2f} s  (CPU {cpu:6.2f} s); same "
              f"figures; pandas takes {seconds / ours:.1f}x DuckDB's time (CPU "
              f"{cpu / ours_cpu:.1f}x){note}",
              flush=True)  # fmt: skip


def prepared_log(generate: Callable[[int, int], pa.Table], customers: int, events: int,
                 model: CompiledModel, folder: Path) -> tuple[Path, pa.Table, float]:  # fmt: skip
    """The generated log (Parquet) and its stage history, reused from ``folder`` when there."""
    label = f"{customers}_{events}"
    path, kept = folder / f"events_{label}.parquet", folder / f"transitions_{label}.parquet"
    start = time.perf_counter()
    if not (path.exists() and kept.exists()):
        pq.write_table(with_channels(generate(customers, events)), path)
        history = duckdb_transitions(str(path), model)
        pq.write_table(history.select(["customer_id", "ts", "from_stage", "to_stage"]), kept)
    return path, pq.read_table(kept), time.perf_counter() - start


def same(ours: Any, theirs: Any, where: str = "") -> None:
    """Equal, floats within rounding (both sides round to 6 places from sums in another
    order); raises with the first difference."""
    if isinstance(ours, float | int) and isinstance(theirs, float | int):
        if not np.isclose(ours, theirs, rtol=1e-6, atol=2e-6):
            raise AssertionError(f"{where}: {ours} != {theirs}")
    elif isinstance(ours, dict) and isinstance(theirs, dict):
        if set(ours) != set(theirs):
            raise AssertionError(f"{where}: keys {sorted(ours)} != {sorted(theirs)}")
        for key in ours:
            same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(ours, list | tuple) and isinstance(theirs, list | tuple):
        if len(ours) != len(theirs):
            raise AssertionError(f"{where}: {len(ours)} rows != {len(theirs)}")
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            same(a, b, f"{where}[{i}]")
    elif ours != theirs:
        raise AssertionError(f"{where}: {ours!r} != {theirs!r}")


def report_figures(name: str, report: Any) -> Any:
    """The figures of a report that its pandas peer computes, in the peer's shape."""
    if name == "funnel":
        counts = {c.stage: c.customers for c in report.counts if c.customers}
        steps = [(s.entered, s.converted, s.median_days) for s in report.steps]
        return {"counts": counts, "steps": steps}
    if name == "churn_retention":
        r = report.at_risk
        return {"periods": [(p.active_at_start, p.new, p.churned, p.reactivated,
                             p.revenue, p.net_revenue_retention,
                             p.gross_revenue_retention) for p in report.periods],
                "at_risk": (r.alive_customers, r.scored_customers, r.health_customers,
                            r.customers, r.revenue_12m, r.clv_12m)}  # fmt: skip
    if name == "cohorts":
        return [(c.cohort, c.customers, c.active_share, c.revenue_per_customer)
                for c in report.cohorts]  # fmt: skip
    if name == "rfm":
        return {"segments": {s.segment: (s.customers, s.revenue)
                             for s in report.segments if s.customers},
                "grid": {f"{c.recency}/{c.frequency_monetary}": c.customers
                         for c in report.grid}}  # fmt: skip
    if name == "attribution":
        rules = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
        return {f"{p.from_stage} -> {p.to_stage}": {
            "transitions": p.transitions, "journeys": p.journeys,
            "conversion_rate": p.conversion_rate,
            "channels": {c.value: {**{rule: getattr(c, rule) for rule in rules},
                                   "journeys": c.journeys,
                                   "converted_journeys": c.converted_journeys,
                                   "conversion_rate": c.conversion_rate}
                         for c in p.channels},
        } for p in report.pairs}  # fmt: skip
    if name == "acquisition":
        return {c.value: (c.spend, c.new_customers, c.cac, c.clv_12m, c.clv_to_cac,
                          c.payback_months) for c in report.channels}  # fmt: skip
    return {part: {f"{r.survey} {r.key}": (r.responses, r.mean_score, r.value)
                   for r in getattr(report, part)}
            for part in ("over_time", "by_stage", "by_segment")}  # fmt: skip


def made_up_spend(db: Any, workspace_id: int) -> list[SpendRow]:
    """Monthly spend for a demo that has none, so that CAC, CLV:CAC and payback are checked
    too: 10,000 a month on every touchpoint channel but ``organic`` (no spend: no CAC) over the
    customers' span, 30,000 on ``paid_search``; months cut by the span are widened to whole."""
    from sqlalchemy import text

    from clm.analytics import open_report_source

    source = open_report_source(db, workspace_id, "sql")
    try:
        lo, hi = source.bounds() or (0, 0)
    finally:
        source.close()
    with db.engine.connect() as conn:
        channels = conn.execute(text(
            "SELECT DISTINCT channel FROM customer_events WHERE workspace_id = :ws "
            "AND channel IS NOT NULL AND channel NOT IN ('system', 'organic')"
        ), {"ws": workspace_id}).scalars().all()  # fmt: skip
    months = range(period_of(lo, "month"), period_of(hi, "month") + 1)
    return [
        SpendRow(str(c), "", period_start(m, "month"), period_start(m + 1, "month"),
                 30_000.0 if c == "paid_search" else 10_000.0)
        for c in channels for m in months
    ]  # fmt: skip


def run_demo(url: str, workspace: str, names: list[str], pandas: bool, migrate: bool) -> None:
    """Every report on the demo's database (``sql`` engine, a fresh source per report, as
    ``clm report NAME``), then the pandas peers, checked equal, with the ratio."""
    import peers  # beside this script

    from clm.analytics import open_report_source, run_on
    from clm.analytics.spend import load_spend
    from clm.lifecycle.catalog import get_stage_model
    from clm.store.workspaces import get_workspace

    db = open_existing(url, migrate=migrate)
    with db.session() as session:
        ws_id = get_workspace(session, workspace).id
    spend = load_spend(db, ws_id) or made_up_spend(db, ws_id)
    reports: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    cpus: dict[str, float] = {}
    for name in names:

        def one(name: str = name) -> None:
            source = open_report_source(db, ws_id, "sql")
            try:
                spec = REPORTS[name]
                query = parse_query(spec.query, {})
                if name == "acquisition":  # the stored spend, or the made-up one
                    reports[name] = spec.run(source, query, spend)
                else:
                    reports[name] = run_on(source, name, query, db, ws_id)
            finally:
                source.close()

        seconds[name], cpus[name] = timed_cpu(one)
        print(f"{'demo sqlite':>12} {name:<16} {seconds[name]:8.2f} s  (CPU {cpus[name]:6.2f} s)",
              flush=True)  # fmt: skip
    if not pandas:
        return
    info, model = get_stage_model(db, ws_id, None)
    stages = [s.name for s in model.stages if not s.exit]
    exits = [s.name for s in model.stages if s.exit]
    log: list[Any] = []
    took, cpu = timed_cpu(lambda: log.append(peers.load(db, ws_id, info.id, stages, exits)))
    print(f"{'pandas demo':>12} {'load (4 queries)':<16} {took:8.2f} s  (CPU {cpu:6.2f} s)",
          flush=True)  # fmt: skip
    log[0].spend = pd.DataFrame([r.__dict__ for r in spend])  # the stored one, or made up
    for name in (n for n in PEERS if n in reports):
        peer = pandas_peer(name)
        result: list[Any] = []
        took_peer, cpu = timed_cpu(lambda: result.append(peer(log[0])))  # noqa: B023
        same(report_figures(name, reports[name]), result[0], name)
        print(f"{'pandas demo':>12} {name:<16} {took_peer:8.2f} s  (CPU {cpu:6.2f} s); same "
              f"figures; the report takes {seconds[name] / took_peer:.1f}x pandas' time "
              f"(CPU {cpus[name] / cpu:.1f}x), {seconds[name] / (took_peer + took):.1f}x "
              "counting pandas' load",
              flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--small-customers", type=int, default=100_000)
    parser.add_argument("--engines", default="sqlite,postgres", help="at --small-customers")
    parser.add_argument("--data-dir", type=Path, help="keep the generated logs here and reuse them")
    parser.add_argument("--reports", default=",".join(REPORTS), help="comma-separated names")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas peers")
    parser.add_argument("--demo", help="a demo database URL: every report there, pandas beside")
    parser.add_argument("--demo-workspace", default="cdnow")
    add_migrate_option(parser)
    args = parser.parse_args()
    if args.demo:
        names = [n for n in args.reports.split(",") if n]
        run_demo(args.demo, args.demo_workspace, names, not args.no_pandas, args.migrate)
        return
    generate = _lifecycle_generator()
    model = shipped_model("classic")
    names = [n for n in args.reports.split(",") if n]
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        sizes = [(args.customers, args.events)]
        small = (args.small_customers, args.events * args.small_customers // args.customers)
        if args.engines and small != sizes[0]:
            sizes.append(small)
        for customers, events in sizes:
            label = f"{customers // 1000}k"
            path, history, took = prepared_log(generate, customers, events, model, folder)
            print(f"{label}: {customers:,} customers, {events:,} events, {history.num_rows:,} "
                  f"transitions generated or read in {took:.1f} s", flush=True)  # fmt: skip
            start, cpu = time.perf_counter(), time.process_time()
            source = duckdb_report_source(path, history, model)
            print(f"{'duckdb ' + label:>12} source build     {time.perf_counter() - start:8.2f} s  "
                  f"(CPU {time.process_time() - cpu:6.2f} s; load + flatten once, not a report)",
                  flush=True)  # fmt: skip
            reports: dict[str, Any] = {}
            run_reports(source, f"duckdb {label}", names, results, reports)
            del source  # DuckDB's memory (GiBs at 1M) is freed before pandas reads the log
            gc.collect()
            if not args.no_pandas:
                compare_with_pandas(path, history, model, label, results, reports)
            if (customers, events) == small:
                log = pq.read_table(path)
                for engine in filter(None, args.engines.split(",")):
                    other = sql_source(engine, log, history, model, folder)
                    run_reports(other, f"{engine} {label}", names, results)
                    if engine == "postgres":
                        other.backend.raw_sql("DROP TABLE bench_events, bench_transitions")
                    other.backend.disconnect()


if __name__ == "__main__":
    main()
