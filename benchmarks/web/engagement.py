"""How long the engagement page's views take to load: the p95 of the /api/v1 calls each view
makes on opening, over real HTTP against the real app, on the web benchmark's SQLite workspace
(100,000 customers, 2,000,000 events) with engagement data added on top.

    .venv/bin/python benchmarks/web/engagement.py --data /tmp/clm-web-bench --repeat 10

It reuses (copies) the workspace ``run.py`` builds in ``--data`` (building it first if it is
not there), then adds, with bulk inserts: an NPS survey asked of 60,000 customers and answered
by ``--answers`` of them over the three years (a comment on one in five, a second revision for
the comment as the one-click flow writes it), a playbook with ``--journeys`` journeys (55%
completed, 25% waiting, 15% running, 5% failed with an error), 20,000 referral codes, 5,000
referral link clicks, 1,000 referrals (10% waiting for review, 20% rejected) and 500 open
tasks. The seeded journeys' goal outcomes are then observed once, as the engagement tick
would, and timed. Each view's time is the wall time of its calls made concurrently, as the
browser does. The survey answers are inserted behind CLM's back, as an import of an old log
would be: the first read folds them into the stored latest answers (the warm-up call, not
timed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from clm.engage.playbooks import outcomes
from clm.engage.playbooks import service as pb
from clm.engage.surveys import service as surveys
from clm.engage.surveys.results import survey_results
from clm.engage.surveys.schemas import SurveyDefinition
from clm.engage.surveys.stored_answers import catch_up, invalidate_answers
from clm.store.engine import Database
from clm.web import create_app

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_db.py, _http.py
from _db import add_migrate_option, open_existing
from _http import LoopbackServer, after_warm_up, load_page, percentiles
from run import SPAN, START, _stamp, build

BOOK = {
    "name": "bench",
    "trigger": {"type": "event", "event": "Plan Upgraded"},
    "holdout": 0.1,
    "goal": {"event": "Order Completed", "within_days": 30},
    "steps": [
        {"id": "thanks", "type": "send", "category": "account", "purpose": "transactional",
         "content": {"subject": "Thanks", "text": "Thanks for upgrading"}},
        {"id": "settle", "type": "wait", "days": 7},
        {"id": "review", "type": "wait_until", "event": "Review Written", "days": 14},
        {"id": "call", "type": "task", "title": "Call"},
    ],
}  # fmt: skip
COMMENTS = ("Great service, thank you!", "Slow delivery, very disappointed.", "It is fine.")


def seed(path: Path, answers: int, journeys: int, seed: int = 11) -> None:
    """The engagement data on top of the web benchmark's workspace (id 1)."""
    db = Database.open(f"sqlite:///{path}")  # migrated to head: the indexes the reads use
    surveys.save_survey(db, 1, SurveyDefinition(key="nps", type="nps"))
    book_id = pb.apply_playbook(db, 1, pb.parse_playbook(BOOK)).id
    db.dispose()
    rng = np.random.default_rng(seed)
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    customers = int(con.execute("SELECT count(*) FROM customers").fetchone()[0])
    asked = rng.choice(np.arange(1, customers + 1), size=min(60_000, customers), replace=False)
    now = int(time.time())
    tokens, events = [], []
    for n, c in enumerate(asked.tolist()):
        at = int(START.timestamp()) + int(rng.integers(0, SPAN))
        answered = n < answers
        tokens.append((1, f"bench-{n}", "survey", "nps", c, _stamp(at),
                       _stamp(at + 3600) if answered else None))  # fmt: skip
        if not answered:
            continue
        score = int(
            rng.choice(11, p=[0.02, 0.02, 0.03, 0.04, 0.05, 0.07, 0.09, 0.16, 0.2, 0.16, 0.16])
        )
        props = {"survey_id": "nps", "survey_type": "nps", "score": score, "comment": None,
                 "response_id": f"bench-{n}", "revision": 1}  # fmt: skip
        events.append((c, f"clm-engage-survey-bench-{n}-1", at + 3600, props))
        if n % 5 == 0:
            text = COMMENTS[n % 3]
            sentiment = (0.8, -0.6, 0.2)[n % 3]
            second = {**props, "comment": text, "sentiment": sentiment, "revision": 2}
            events.append((c, f"clm-engage-survey-bench-{n}-2", at + 7200, second))
    clicks = rng.integers(1, customers + 1, 5_000)
    for n, c in enumerate(clicks.tolist()):
        at = int(START.timestamp()) + int(rng.integers(0, SPAN))
        events.append((c, f"clm-engage-referral-click-{n}", at,
                       {"code": f"C{n % 20_000:06d}", "referrer_id": n % 20_000 + 1}))  # fmt: skip
    con.executemany(
        "INSERT INTO engage_tokens (workspace_id, jti, purpose, subject, customer_id, issued_at,"
        " used_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        tokens,
    )
    con.executemany(
        "INSERT INTO events (workspace_id, identity_id, message_id, type, name, user_id,"
        " timestamp, ts, received_at, channel, revenue, properties, context)"
        " VALUES (1, ?, ?, 'track', ?, ?, ?, ?, ?, NULL, NULL, ?, '{}')",
        ((c, mid, "survey_answered" if "survey" in mid else "Referral Link Clicked", f"u{c}",
          _stamp(ts), ts, _stamp(ts), json.dumps(props))
         for c, mid, ts, props in events),
    )  # fmt: skip
    states = rng.choice(["completed", "waiting", "active", "failed"], journeys,
                        p=[.55, .25, .15, .05])  # fmt: skip
    who = rng.choice(np.arange(1, customers + 1), size=min(journeys, customers), replace=False)
    rows = []
    for j, (c, state) in enumerate(zip(who.tolist(), states.tolist(), strict=False)):
        enrolled = now - int(rng.integers(0, 90 * 86_400))
        step = {"completed": 4, "waiting": 2, "active": 1, "failed": 0}[state]
        wake = enrolled + 7 * 86_400 if state in ("waiting", "active") else None
        rows.append((book_id, c, "control" if j % 10 == 0 else "treatment", step, state,
                     _stamp(wake) if wake else None,
                     "Review Written" if state == "waiting" else None,
                     _stamp(enrolled), enrolled, _stamp(enrolled)))  # fmt: skip
    con.executemany(
        "INSERT INTO engage_journeys (workspace_id, playbook_id, playbook_name, customer_id, arm,"
        " variant, step, state, wake_at, wait_event, enrolled_at, enrolled_ts, updated_at)"
        " VALUES (1, ?, 'bench', ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    con.execute(
        "INSERT INTO engage_journey_log (workspace_id, journey_id, step, action, detail, at)"
        " SELECT 1, id, 'thanks', 'error', 'TypeError: unsupported operand', updated_at"
        " FROM engage_journeys WHERE state = 'failed'"
    )
    stamp = _stamp(now)
    con.executemany(
        "INSERT INTO engage_referral_codes (workspace_id, customer_id, code, created_at)"
        " VALUES (1, ?, ?, ?)",
        ((c, f"C{c - 1:06d}", stamp) for c in range(1, 20_001)),
    )
    referrals = []
    for n in range(1_000):
        status = "review" if n % 10 == 0 else "rejected" if n % 5 == 1 else "qualified"
        checks = [{"check": "email_alias" if status != "qualified" else "attribution",
                   "flagged": status != "qualified", "detail": "one mailbox"}]  # fmt: skip
        referrals.append((f"C{n:06d}", n + 1, 50_001 + n, status, json.dumps(checks),
                          stamp if status != "rejected" else None, stamp))  # fmt: skip
    con.executemany(
        "INSERT INTO engage_referrals (workspace_id, code, referrer_id, referee_id, status,"
        " checks, qualified_at, created_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
        referrals,
    )
    con.executemany(
        "INSERT INTO engage_tasks (workspace_id, customer_id, kind, title, owner, detail, status,"
        " dedupe_key, created_at) VALUES (1, ?, 'survey_follow_up', ?, NULL, '{}', 'open', ?, ?)",
        ((c, f"Follow up: NPS score {c % 7}", f"bench-task-{c}", stamp) for c in range(1, 501)),
    )
    con.commit()
    con.execute("ANALYZE")
    con.close()


VIEWS = {
    "playbooks": ["/api/v1/engage/playbooks"],
    "playbook: journeys in flight": ["/api/v1/engage/playbooks",
                                     "/api/v1/engage/playbooks/bench/journeys"],
    "playbook: report (uplift)": ["/api/v1/engage/playbooks/bench/report"],
    "journeys page 40, failed": ["/api/v1/engage/playbooks/bench/journeys?page=40&state=all",
                                 "/api/v1/engage/playbooks/bench/journeys?state=failed"],
    "editor (source + check)": ["/api/v1/engage/playbooks/bench/source"],
    "surveys: results + comments": ["/api/v1/engage/surveys",
                                    "/api/v1/engage/surveys/nps/results",
                                    "/api/v1/engage/surveys/nps/comments"],
    "comments page 50, negative": ["/api/v1/engage/surveys/nps/comments?page=50&tone=negative"],
    "referrals: stats + queue": ["/api/v1/engage/referrals/stats",
                                 "/api/v1/engage/referrals?status=review"],
    "task inbox": ["/api/v1/engage/tasks"],
}  # fmt: skip


def measure(url: str, key: str, repeat: int) -> dict[str, dict[str, float]]:
    headers = {"Authorization": f"Bearer {key}"}
    results = {}
    with (
        httpx.Client(base_url=url, headers=headers, timeout=120) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        check = {"yaml": pb.parse_playbook(BOOK).model_dump_json()}

        def checked() -> list[httpx.Response]:  # the editor checks its source as it opens
            return [client.post("/api/v1/engage/playbooks/check", json=check)]

        for name, calls in VIEWS.items():

            def load(name: str = name, calls: list[str] = calls) -> float:
                also = checked if name.startswith("editor") else None
                return load_page(client, pool, name, calls, also)

            results[name] = percentiles(after_warm_up(load, repeat))
    return results


def refold_answers(db: Database) -> int:
    """The stored survey answers rebuilt from the log: what the first read of a workspace
    upgraded with answers in its log pays once (and a read after a retention purge)."""
    with db.transaction() as session:
        invalidate_answers(session, 1)
    return catch_up(db, 1)


def observe_seeded(db: Database) -> None:
    """The seeded journeys' goal outcomes observed, as the engagement tick would (the seed
    writes journeys straight into the table): timed on its own, as the full computation a
    goal change costs; then a report finds nothing to observe."""
    wall, cpu = time.perf_counter(), time.process_time()
    probed = outcomes.observe_all(db, 1)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"goal outcomes observed for {probed:,} journeys (the full computation once):"
          f" {wall:.1f} s wall, {cpu:.1f} s CPU")  # fmt: skip


def in_process(db: Database, repeat: int = 3) -> dict[str, list[float]]:
    """CPU ms of the heaviest reads called directly (no HTTP), after a warm-up: on a loaded
    machine CPU says more than wall time."""
    calls = {
        "playbook report (in-process)": lambda: pb.playbook_report(db, 1, "bench"),
        "goal outcomes, nothing new": lambda: outcomes.observe_all(db, 1),
        "survey results (in-process)": lambda: survey_results(db, 1, "nps"),
        "survey answers refold (in-process)": lambda: refold_answers(db),
    }
    found = {}
    for name, call in calls.items():
        call()
        cpus = []
        for _ in range(repeat):
            cpu = time.process_time()
            call()
            cpus.append(1000 * (time.process_time() - cpu))
        found[name] = cpus
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--data", type=Path, default=Path("/tmp/clm-web-bench"))
    parser.add_argument("--answers", type=int, default=20_000)
    parser.add_argument("--journeys", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=10)
    add_migrate_option(parser)
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    base = args.data / f"web-{args.customers}-{args.events}.sqlite"
    meta = base.with_suffix(".json")
    if not meta.exists():
        base.unlink(missing_ok=True)
        _, key = build(base, args.customers, args.events)
        meta.write_text(json.dumps({"key": key}))
    key = json.loads(meta.read_text())["key"]
    path = (
        args.data / f"engage-{args.customers}-{args.events}-{args.answers}-{args.journeys}.sqlite"
    )
    if not path.exists():
        started = time.perf_counter()
        shutil.copyfile(base, path)
        seed(path, args.answers, args.journeys)
        print(f"seeded {path} in {time.perf_counter() - started:.0f} s")
    db = open_existing(f"sqlite:///{path}", migrate=args.migrate)
    observe_seeded(db)
    server = LoopbackServer(create_app(db))
    load, cpu = os.getloadavg()[0], time.process_time()
    results = measure(server.url, key, args.repeat)
    print(f"load before {load:.1f}, after {os.getloadavg()[0]:.1f};"
          f" CPU {time.process_time() - cpu:.1f} s (client and server, one process)")  # fmt: skip
    print(f"{'view':32} {'p50 ms':>8} {'p95 ms':>8}")
    for name, figures in results.items():
        print(f"{name:32} {figures['p50']:8.0f} {figures['p95']:8.0f}")
    for name, cpus in in_process(db).items():
        print(f"{name:32} CPU ms {', '.join(f'{c:.0f}' for c in cpus)}")
    server.stop()
    db.dispose()


if __name__ == "__main__":
    main()
