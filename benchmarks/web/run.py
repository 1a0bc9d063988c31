"""How long each web page's data takes to load: the p95 of the /api/v1 calls a page makes,
over real HTTP against the real app, on SQLite with N customers and M events.

    .venv/bin/python benchmarks/web/run.py --customers 100000 --events 2000000 \
        --data /tmp/web-bench --repeat 20

The workspace is written straight into SQLite (bulk inserts, not ingestion: this measures
reading): customers with a user id and an email, events spread over three years (60% page
views, 25% purchases, 15% e-mail opens on channel ``email``), one ``Prediction Scored`` event
per customer (channel ``system``), a stage history (1-3 transitions each under the shipped
classic model) and a current health score for everyone. A page's load time is the wall time
of its calls made concurrently, as the browser does.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import delete, select, update

from clm.analytics.overview_readings import refresh_overview
from clm.analytics.reports import REPORTS
from clm.ingest import ingest
from clm.lifecycle.catalog import get_stage_model
from clm.lifecycle.current_state import rebuild_state
from clm.lifecycle.health_inputs import get_scorecard
from clm.store import workspaces as ws
from clm.store.engine import Database
from clm.store.models import OverviewReading, StageTransition
from clm.web import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_db.py, _http.py
from _db import add_migrate_option, open_existing
from _http import LoopbackServer, after_warm_up, load_page, percentiles

START = datetime(2024, 1, 1, tzinfo=UTC)
SPAN = 3 * 365 * 86_400
STAGES = ("reach", "acquisition", "conversion", "retention", "loyalty", "churned")


def _stamp(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def build(path: Path, customers: int, events: int, seed: int = 7) -> tuple[int, str]:
    """The workspace: (its id, a secret key)."""
    db = Database.open(f"sqlite:///{path}")
    with db.transaction() as session:
        workspace = ws.create_workspace(session, "bench")
        secret = ws.issue_key(session, "secret", workspace.id)
        workspace_id, key = workspace.id, secret.key
    stage_info, stage_model = get_stage_model(db, workspace_id)
    stage_id = stage_info.id
    health_id = get_scorecard(db, workspace_id)[0]
    db.dispose()
    rng = np.random.default_rng(seed)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    now = _stamp(int(time.time()))
    ids = np.arange(1, customers + 1)
    con.executemany(
        "INSERT INTO customers (id, workspace_id, user_id, email, traits, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        ((int(i), workspace_id, f"u{i}", f"person{i}@example.com",
          json.dumps({"name": f"Person {i}", "plan": "pro" if i % 3 else "free"}), now)
         for i in ids),
    )  # fmt: skip
    con.executemany(
        "INSERT INTO identities (id, workspace_id, kind, value, customer_id, first_seen_at)"
        " VALUES (?, ?, 'user_id', ?, ?, ?)",
        ((int(i), workspace_id, f"u{i}", int(i), now) for i in ids),
    )
    who = rng.integers(1, customers + 1, events - customers)
    ts = START.timestamp() + rng.integers(0, SPAN, events - customers)
    kind = rng.random(events - customers)

    def rows():  # type: ignore[no-untyped-def]
        for n, (c, t, k) in enumerate(zip(who.tolist(), ts.tolist(), kind.tolist(), strict=True)):
            stamp = _stamp(int(t))
            if k < 0.6:
                yield (
                    workspace_id,
                    c,
                    f"m{n}",
                    "page",
                    None,
                    f"u{c}",
                    stamp,
                    int(t),
                    stamp,
                    None,
                    None,
                    "{}",
                )
            elif k < 0.85:
                yield (
                    workspace_id,
                    c,
                    f"m{n}",
                    "track",
                    "Order Completed",
                    f"u{c}",
                    stamp,
                    int(t),
                    stamp,
                    None,
                    float(10 + n % 90),
                    f'{{"revenue": {10 + n % 90}}}',
                )
            else:
                yield (
                    workspace_id,
                    c,
                    f"m{n}",
                    "track",
                    "Email Opened",
                    f"u{c}",
                    stamp,
                    int(t),
                    stamp,
                    "email",
                    None,
                    "{}",
                )
        end = int(START.timestamp()) + SPAN
        for c in ids.tolist():
            p = float(rng.random())
            yield (workspace_id, c, f"pred-{c}", "track", "Prediction Scored", f"u{c}",
                   _stamp(end), end, _stamp(end), "system", None,
                   json.dumps({"p_alive": p, "expected_purchases_90d": 2 * p,
                               "clv_12m": round(300 * p * float(rng.random()), 2),
                               "model": "bgnbd", "model_version": "1",
                               "fitted_at": _stamp(end)}))  # fmt: skip

    con.executemany(
        "INSERT INTO events (workspace_id, identity_id, message_id, type, name, user_id,"
        " timestamp, ts, received_at, channel, revenue, properties, context)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{}')",
        rows(),
    )
    transitions = []
    for c in ids.tolist():
        steps = int(rng.integers(1, 4))
        at = int(START.timestamp()) + int(rng.integers(0, SPAN // 2))
        start = int(rng.integers(0, 3))
        for s in range(steps):
            stage = STAGES[min(start + s * 2, 5)]
            frm = None if s == 0 else STAGES[min(start + (s - 1) * 2, 5)]
            kind = stage_model.transition_kind(frm, stage)
            transitions.append((workspace_id, stage_id, c, at, _stamp(at), frm, stage,
                                kind, f"stage:{stage}", None, 1))  # fmt: skip
            at += int(rng.integers(86_400, 200 * 86_400))
    con.executemany(
        "INSERT INTO stage_transitions (workspace_id, definition_id, customer_id, ts, occurred_at,"
        " from_stage, to_stage, kind, rule, cause_message_id, announced)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        transitions,
    )
    scores = rng.uniform(0, 100, customers)
    # a health history: 1-4 snapshots per customer over the last 90 days, the last one the
    # current score (so the overview's health trend and this week's movers have data)
    today = int(time.time())
    history = []
    for c, s in zip(ids.tolist(), scores.tolist(), strict=True):
        steps = int(rng.integers(1, 5))
        at = today - int(rng.integers(1, 90 * 86_400))
        values = [*rng.uniform(0, 100, steps - 1).tolist(), s]
        for n, v in enumerate(values):
            state = "happy" if v >= 70 else "at_risk" if v >= 40 else "unhappy"
            history.append((workspace_id, health_id, c, at, _stamp(at), float(v), state, "{}"))
            at = min(today, at + int(rng.integers(3_600, 30 * 86_400))) if n + 1 < steps else at
    con.executemany(
        "INSERT INTO health_history (workspace_id, definition_id, customer_id, ts, occurred_at,"
        " score, state, contributions, cause_message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        history,
    )
    con.executemany(
        "INSERT INTO health_scores (workspace_id, definition_id, customer_id, scored_at, score,"
        " state, contributions, next_due) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
        ((workspace_id, health_id, int(c), int(time.time()), float(s),
          "happy" if s >= 70 else "at_risk" if s >= 40 else "unhappy",
          json.dumps({"recency": {"value": int(s), "points": s / 4, "weight": 25}}))
         for c, s in zip(ids.tolist(), scores.tolist(), strict=True)),
    )  # fmt: skip
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return workspace_id, key


def set_transition_kinds(db: Database, workspace_id: int) -> int:
    """Give the transitions of a file built before the builder wrote kinds their stage model's
    kind (it wrote ``event`` for all, which is neither up nor down: the list's ``moved=up``
    selected nobody); the number of transitions changed."""
    info, model = get_stage_model(db, workspace_id)
    t, changed = StageTransition, 0
    old = [t.definition_id == info.id, t.kind == "event"]
    with db.transaction() as session:
        pairs = session.execute(select(t.from_stage, t.to_stage).where(*old).distinct()).all()
        for source, target in pairs:
            came_from = t.from_stage.is_(None) if source is None else t.from_stage == source
            changed += session.execute(
                update(t)
                .where(*old, came_from, t.to_stage == target)
                .values(kind=model.transition_kind(source, target))
            ).rowcount
    return changed


def _days_ago(days: int) -> str:
    return datetime.fromtimestamp(time.time() - days * 86_400, UTC).date().isoformat()


# The whole-history readings of the overview and the reports, stored (clm.analytics.kept):
# the first request of each, timed once in a freshly started server, before the pages are
# measured warm. The last of each group is not a default of its page: the live loop does not
# store it, its first request reads the log (and says "not ready" until it has).
FIRST_READINGS = {
    "overview": [
        "/api/v1/overview/trends",
        "/api/v1/overview/movers?days=7&limit=8",
        "/api/v1/overview/retention",
        "/api/v1/overview/funnel",
        "/api/v1/overview/retention?since=" + _days_ago(90),
    ],
    "reports": [
        *(f"/api/v1/reports/{name}" for name in REPORTS),
        "/api/v1/reports/churn_retention?granularity=quarter",
    ],
}


def first_readings(client: httpx.Client, calls: list[str]) -> dict[str, float]:
    """Seconds until each kept reading is ready (the answer says ``ready``)."""
    seconds = {}
    for call in calls:
        started = time.perf_counter()
        while True:
            answer = client.get(call)
            if answer.status_code != 200:
                raise SystemExit(f"{call}: {answer.status_code} {answer.text[:200]}")
            if answer.json().get("ready", True):
                break
            time.sleep(2)
        seconds[call] = time.perf_counter() - started
    return seconds


RUN_STARTED = int(time.time())  # "this week" is the week before the run: the same every load


def _instant(seconds_ago: int) -> str:
    return datetime.fromtimestamp(RUN_STARTED - seconds_ago, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# A week with stage moves in the built history (its transitions end in mid-2026: nobody
# moved this week there) and a day in it, for the overview's click-throughs to the list.
MOVES_WEEK = "moved_since=2025-03-03T00:00:00Z&moved_until=2025-03-10T00:00:00Z"
PAST_DAY = "as_of=2025-06-30T23:59:59Z"


def click_throughs() -> dict[str, list[str]]:
    """The customer list as the overview's numbers open it (``clm.lifecycle.history_filters``):
    a chart point's stage or health (``as_of``), a week's movers (``moved``, ``moved_to``)
    and this week's health falls (the movers' window: the last 7 days), each at the list's
    default page size, with the list page's other call; also with a sort."""
    fell = f"health_fell=true&moved_since={_instant(7 * 86_400)}&moved_until={_instant(0)}"
    health_day = f"as_of={_instant(30 * 86_400)}"
    views = {
        "stage on a past day": f"stage=retention&{PAST_DAY}",
        "stage on a past day, by CLV": f"stage=retention&{PAST_DAY}&sort=clv&order=desc",
        "at risk 30 days ago": f"health_state=at_risk,unhappy&{health_day}",
        "at risk 30 days ago, by revenue": f"health_state=at_risk,unhappy&{health_day}"
                                           "&sort=revenue&order=desc",
        "moved up in a week": f"moved=up&{MOVES_WEEK}",
        "moved up in a week, by last seen": f"moved=up&{MOVES_WEEK}&sort=last_seen&order=desc",
        "moved down in a week": f"moved=down&{MOVES_WEEK}",
        "moved into loyalty in a week": f"moved_to=loyalty&{MOVES_WEEK}",
        "health fell this week": fell,
        "health fell this week, lowest score": f"{fell}&sort=health_score&order=asc",
    }  # fmt: skip
    return {
        f"customers, {name}": [f"/api/v1/customer-list?{params}", "/api/v1/lifecycle/counts"]
        for name, params in views.items()
    }


def pages(customer_id: int) -> dict[str, list[str]]:
    """Each page and the /api/v1 calls it makes on opening."""
    c = f"/api/v1/customers/{customer_id}"
    return {
        "overview": ["/api/v1/workspace/stats", "/api/v1/lifecycle/counts",
                     "/api/v1/overview/trends", "/api/v1/overview/movers?days=7&limit=8",
                     "/api/v1/overview/retention", "/api/v1/overview/revenue-at-risk",
                     "/api/v1/overview/funnel"],
        "overview 90 days daily": ["/api/v1/overview/trends?grain=day&since=" + _days_ago(90),
                                    "/api/v1/overview/retention?since=" + _days_ago(90)],
        "customers": ["/api/v1/customer-list", "/api/v1/lifecycle/counts"],
        "customers, search": ["/api/v1/customer-list?q=person1234"],
        "customers, short search": ["/api/v1/customer-list?q=son12"],
        "customers, stage filter": ["/api/v1/customer-list?stage=loyalty"],
        "at-risk (by CLV)": [
            "/api/v1/customer-list?health_state=at_risk,unhappy&sort=clv&order=desc"
        ],
        "customers, by last seen": ["/api/v1/customer-list?sort=last_seen&order=desc"],
        "customers, RFM filter": ["/api/v1/customer-list?rfm=Champions,Loyal&sort=revenue"
                                  "&order=desc"],
        "customers, most purchases": ["/api/v1/customer-list?sort=purchases&order=desc"],
        "customers, fewest purchases, page 20": ["/api/v1/customer-list?sort=purchases"
                                                 "&order=asc&page=20"],
        "customers, lowest P(alive)": ["/api/v1/customer-list?sort=p_alive&order=asc&page=20"],
        "customers, CLV and P(alive) ranges": ["/api/v1/customer-list?clv_min=50&p_alive_min=0.5"
                                               "&sort=clv&order=desc"],
        "customers, gone quiet and spent": ["/api/v1/customer-list?unseen_days=90&revenue_min=100"
                                            "&sort=last_seen&order=desc"],
        "customers, seen between days": ["/api/v1/customer-list?seen_from=2025-01-01"
                                         "&seen_to=2025-06-30&sort=last_seen"],
        **click_throughs(),
        "customer 360": [c, f"{c}/lifecycle", f"{c}/predictions", f"{c}/timeline?limit=200",
                         f"{c}/notes", f"{c}/engagement"],
        "segments": ["/api/v1/segments"],
        "settings, health scorecard": ["/api/v1/health/scorecard"],
        "settings, guardrails": ["/api/v1/engage/policy", "/api/v1/engage/channels"],
        # the Reports page opens on one report's default view (one call, kept: see above)
        **{f"reports, {name}": [f"/api/v1/reports/{name}"] for name in REPORTS},
    }  # fmt: skip


def measure(
    url: str, key: str, repeat: int, customers: int, only: list[str] | None = None
) -> dict[str, dict[str, float]]:
    headers = {"Authorization": f"Bearer {key}"}
    results: dict[str, dict[str, float]] = {}
    rng = np.random.default_rng(1)
    with (
        httpx.Client(base_url=url, headers=headers, timeout=600) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        for group, calls in FIRST_READINGS.items():
            if only and not any(name.startswith(group) for name in only):
                continue
            cpu = time.process_time()
            for call, seconds in first_readings(client, calls).items():
                print(f"first request {call}: {seconds * 1000:.0f} ms")
            print(f"  (server process CPU meanwhile: {time.process_time() - cpu:.1f} s)")
        for name, calls in click_throughs().items():  # a filter selecting nobody measures nothing
            if not only or name in only:
                total = client.get(calls[0]).raise_for_status().json()["total"]
                print(f"{name}: {total:,} customers")
        for name in pages(1):
            if only and name not in only:
                continue

            def load(name: str = name) -> float:  # a random customer's page each time
                calls = pages(int(rng.integers(1, customers + 1)))[name]
                return load_page(client, pool, name, calls)

            results[name] = percentiles(after_warm_up(load, repeat))
    return results


def single_calls(
    url: str, key: str, repeat: int, customers: int, only: list[str] | None = None
) -> dict[str, dict[str, float]]:
    """Each call of the pages alone (one at a time, a random customer each run), p50 and p95
    after one warm-up: which call a page's time is."""
    headers = {"Authorization": f"Bearer {key}"}
    rng = np.random.default_rng(2)
    times: dict[str, list[float]] = {}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for n in range(repeat + 1):
            customer = int(rng.integers(1, customers + 1))
            for name, calls in pages(customer).items():
                if only and name not in only:
                    continue
                for call in calls:
                    started = time.perf_counter()
                    client.get(call).raise_for_status()
                    elapsed = (time.perf_counter() - started) * 1000
                    label = call.replace(f"/customers/{customer}", "/customers/{id}")
                    if n:
                        times.setdefault(label.removeprefix("/api/v1/"), []).append(elapsed)
    return {call: percentiles(values) for call, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--data", type=Path, default=Path("/tmp/clm-web-bench"))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--pages", help="page names separated by ';' (default: all)")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="delete the stored readings first (a server that never stored any)",
    )
    parser.add_argument(
        "--calls", action="store_true", help="also time each call of the pages alone, in turn"
    )
    parser.add_argument(
        "--outdated",
        action="store_true",
        help="add one event after the live loop's step, so every stored reading is outdated:"
        " the pages are measured while the server reads them again in the background",
    )
    add_migrate_option(parser)
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    path = args.data / f"web-{args.customers}-{args.events}.sqlite"
    meta = path.with_suffix(".json")
    if not meta.exists():
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        workspace_id, key = build(path, args.customers, args.events)
        meta.write_text(json.dumps({"key": key, "workspace_id": workspace_id}))
        print(f"built {path} in {time.perf_counter() - started:.0f} s")
    built = json.loads(meta.read_text())
    key = built["key"]
    if "state_seconds" not in built:  # the stored current state, as the demo and worker keep it
        db = open_existing(f"sqlite:///{path}", migrate=args.migrate)
        cpu, wall = time.process_time(), time.perf_counter()
        report = rebuild_state(db, built.get("workspace_id", 1))
        built["state_seconds"] = round(time.perf_counter() - wall, 1)
        built["state_cpu_seconds"] = round(time.process_time() - cpu, 1)
        meta.write_text(json.dumps(built))
        db.dispose()
        print(f"rebuilt {report.customers:,} customers' state in {built['state_seconds']} s "
              f"({built['state_cpu_seconds']} s CPU, load {os.getloadavg()[0]:.1f})")  # fmt: skip
    db = open_existing(f"sqlite:///{path}", migrate=args.migrate)
    if changed := set_transition_kinds(db, built.get("workspace_id", 1)):
        print(f"gave {changed:,} stage transitions their kind (entry, skip, exit, ...)")
    if args.cold:
        with db.transaction() as session:
            session.execute(delete(OverviewReading))
    else:  # what the live loop (or clm demo) stores after its passes
        cpu, wall = time.process_time(), time.perf_counter()
        read = refresh_overview(db, built.get("workspace_id", 1))
        print(f"live loop's readings step: read {read or 'nothing (all current)'} in "
              f"{time.perf_counter() - wall:.1f} s ({time.process_time() - cpu:.1f} s CPU, "
              f"load {os.getloadavg()[0]:.1f})")  # fmt: skip
    if args.outdated:
        stamp = datetime.now(UTC).isoformat()
        order = {"type": "track", "userId": "u1", "event": "Order Completed",
                 "messageId": f"outdated-{time.time_ns()}", "timestamp": stamp,
                 "properties": {"revenue": 10}}  # fmt: skip
        ingest(db, built.get("workspace_id", 1), [order])
        print("one event added: every stored reading is outdated")
    db.dispose()
    db = Database.open(f"sqlite:///{path}", run_migrations=False)  # a freshly started server
    server = LoopbackServer(create_app(db))
    print(f"load before: {os.getloadavg()[0]:.1f}")
    only = [p.strip() for p in args.pages.split(";")] if args.pages else None
    cpu = time.process_time()
    url = server.url
    results = measure(url, key, args.repeat, args.customers, only)
    print(f"CPU of this process (server and client): {time.process_time() - cpu:.1f} s")
    print(f"load after: {os.getloadavg()[0]:.1f}")
    print(f"{'page':50} {'p50 ms':>8} {'p95 ms':>8}")
    for name, figures in results.items():
        print(f"{name:50} {figures['p50']:8.0f} {figures['p95']:8.0f}")
    if args.calls:
        print(f"{'call':40} {'p50 ms':>8} {'p95 ms':>8}")
        for call, figures in single_calls(url, key, args.repeat, args.customers, only).items():
            print(f"{call:40} {figures['p50']:8.0f} {figures['p95']:8.0f}")
    server.stop()
    db.dispose()


if __name__ == "__main__":
    main()
