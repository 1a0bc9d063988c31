"""How long saved segments take at scale: saving one (with its size history), listing them,
a page of members, the CSV, the size history and the live loop's daily count, on SQLite.

    PYTHONPATH=src .venv/bin/python benchmarks/segments/run.py --customers 100000 \
        --events 2000000 --data /tmp/segments-bench --repeat 10

The workspace is benchmarks/web's (built the same way, kept in ``--data``), with its stored
current state rebuilt (``rebuild_state``). Calls go over real HTTP to the real app (uvicorn on
loopback, in this process); each figure is p50/p95 of ``--repeat`` calls after a warm-up, with
the process's CPU seconds (server and client together) beside the wall time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from clm.lifecycle.current_state import rebuild_state
from clm.lifecycle.saved_segments import record_sizes
from clm.store.engine import Database
from clm.web import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_db.py, _http.py
from _db import add_migrate_option, open_existing
from _http import LoopbackServer, percentiles

HERE = Path(__file__).parent
SEGMENTS: dict[str, list[dict[str, Any]]] = {
    "loyal (stage)": [{"attr": "stage", "op": "in", "value": ["loyalty", "retention"]}],
    "at risk (health)": [{"attr": "health", "op": "in", "value": ["at_risk", "unhappy"]}],
    "quiet free plan (trait + last seen)": [
        {"attr": "traits.plan", "value": "free"},
        {"attr": "last_seen_days", "op": "gt", "value": 180},
    ],
    "valuable, fading (p_alive + clv)": [
        {"attr": "p_alive", "op": "lt", "value": 0.3},
        {"attr": "clv", "op": "gte", "value": 100},
    ],
    "search": [{"attr": "search", "op": "contains", "value": "person12"}],
}


def _web_build() -> Any:
    spec = importlib.util.spec_from_file_location("web_bench", HERE.parent / "web" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build


def _timed(call: Any, repeat: int) -> dict[str, float]:
    walls, cpus = [], []
    for n in range(repeat + 1):
        cpu, wall = time.process_time(), time.perf_counter()
        call()
        if n:
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
    return {**percentiles(walls), "cpu": statistics.median(cpus)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--data", type=Path, default=Path("/tmp/segments-bench"))
    parser.add_argument("--repeat", type=int, default=10)
    add_migrate_option(parser)
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    path = args.data / f"segments-{args.customers}-{args.events}.sqlite"
    meta = path.with_suffix(".json")
    if not meta.exists():
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        workspace_id, key = _web_build()(path, args.customers, args.events)
        db = Database.open(f"sqlite:///{path}")
        state = time.perf_counter()
        rebuild_state(db, workspace_id)
        rebuilt = time.perf_counter() - state
        print(f"built in {state - started:.0f} s, state rebuilt in {rebuilt:.0f} s")
        db.dispose()
        meta.write_text(json.dumps({"key": key, "workspace_id": workspace_id}))
    info = json.loads(meta.read_text())
    db = open_existing(f"sqlite:///{path}", migrate=args.migrate)
    server = LoopbackServer(create_app(db))
    load = os.getloadavg()[0]
    rows: list[tuple[str, dict[str, float]]] = []
    headers = {"Authorization": f"Bearer {info['key']}"}
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=600) as client:
        for segment in client.get("/segments").json():  # a rerun starts clean
            client.delete(f"/segments/{segment['id']}")
        ids = {}
        for name, conditions in SEGMENTS.items():
            cpu, wall = time.process_time(), time.perf_counter()
            answer = client.post("/segments", json={"name": name, "conditions": conditions})
            answer.raise_for_status()
            saved = answer.json()
            ids[name] = saved["id"]
            took = {"p50": (time.perf_counter() - wall) * 1000, "p95": float("nan"),
                    "cpu": (time.process_time() - cpu) * 1000}  # fmt: skip
            what = f"{saved['size']:,} members, backfilled: {saved['backfilled']}"
            rows.append((f"save `{name}` ({what})", took))

        def get(path: str) -> None:
            client.get(path).raise_for_status()

        rows.append(
            ("list (5 segments, recorded sizes)", _timed(lambda: get("/segments"), args.repeat))
        )
        rows.append(
            (
                "list (5 segments counted live, ?live=true)",
                _timed(lambda: get("/segments?live=true"), args.repeat),
            )
        )
        for name, sid in ids.items():
            first = f"/segments/{sid}/members"
            recent = f"{first}?sort=last_seen&order=desc"
            rows.append((f"members page 1 `{name}`", _timed(lambda p=first: get(p), args.repeat)))
            rows.append(
                (f"members by last seen `{name}`", _timed(lambda p=recent: get(p), args.repeat))
            )
        rows.append(
            ("sizes", _timed(lambda: get(f"/segments/{ids['loyal (stage)']}/sizes"), args.repeat))
        )
        rows.append(("members.csv `at risk (health)`", _timed(
            lambda: get(f"/segments/{ids['at risk (health)']}/members.csv"), 1)))  # fmt: skip
    daily = _timed(lambda: record_sizes(db, info["workspace_id"], _tomorrow()), 1)
    rows.append(("live loop: the day's sizes of all 5", daily))
    server.stop()
    print(f"load (1 min) {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    print("| call | p50 ms | p95 ms | CPU ms (median) |\n|---|---|---|---|")
    for name, t in rows:
        p95 = "–" if t["p95"] != t["p95"] else f"{t['p95']:,.0f}"
        print(f"| {name} | {t['p50']:,.0f} | {p95} | {t['cpu']:,.0f} |")


_DAYS = [0]


def _tomorrow() -> Any:
    """A new day for each call, so the daily step really counts every segment."""
    from datetime import UTC, datetime, timedelta

    _DAYS[0] += 1
    return datetime.now(UTC) + timedelta(days=_DAYS[0])


if __name__ == "__main__":
    main()
