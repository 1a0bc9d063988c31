"""The health scorecard editor's two slow calls on a real workspace: the preview of an edit
(customers per state before and after; the first call starts the job that takes the feature
snapshot, the next ones reuse it) and the backtest of an edit on the latest cutoff (a job), over
real HTTP. For each: how long the call itself takes to answer (what the page waits for), and,
for a job, how long until it is done (polled as the page polls).

    PYTHONPATH=src .venv/bin/python benchmarks/web/settings.py \\
        --database sqlite:///$HOME/.local/share/clm/demo/clm.sqlite --workspace cdnow

Prints wall and CPU seconds (this process: the server runs in a thread of it) and the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from clm.store import workspaces
from clm.store.models import Workspace
from clm.web import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_db.py, _http.py
from _db import add_migrate_option, open_existing
from _http import LoopbackServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--workspace", default="cdnow")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stage-model", action="store_true", help="also the stage preview")
    parser.add_argument("--only-stage-model", action="store_true", help="the stage preview only")
    add_migrate_option(parser)
    args = parser.parse_args()
    db = open_existing(args.database, migrate=args.migrate)
    with db.transaction() as session:
        ws = session.scalar(select(Workspace.id).where(Workspace.slug == args.workspace))
        if ws is None:
            raise SystemExit(f"no workspace {args.workspace!r}")
        key = workspaces.issue_key(session, "manage", ws).key
    server = LoopbackServer(create_app(db))
    print(f"load before: {os.getloadavg()[0]:.1f}")
    with httpx.Client(
        base_url=f"{server.url}/api/v1/health",
        headers={"Authorization": f"Bearer {key}"},
        timeout=600,
    ) as client:
        card = client.get("/scorecard").json()
        weight = card["factors"][0]["weight"]
        first = {"weights": {card["factors"][0]["key"]: weight * 2}}
        calls = [("preview, first (snapshot)", "/scorecard/preview", first)]
        calls += [
            (
                f"preview, again ({n})",
                "/scorecard/preview",
                {"weights": {card["factors"][0]["key"]: weight + n}},
            )
            for n in range(1, args.repeat + 1)
        ]
        calls += [
            (
                "backtest, latest cutoff",
                "/backtest",
                {"weights": {card["factors"][0]["key"]: weight + 1}},
            )
        ]
        # The stage model editor's preview: the whole stage history recomputed.
        if args.stage_model or args.only_stage_model:
            model = client.get("../lifecycle/model").json()["yaml"]
            calls += [("stage model preview", "../lifecycle/model/preview", {"yaml": model})]
        if args.only_stage_model:
            calls = [c for c in calls if "lifecycle" in c[1]]
        for name, path, body in calls:
            wall, cpu = time.perf_counter(), time.process_time()
            answer = client.post(path, json=body)
            answer.raise_for_status()
            answered = time.perf_counter() - wall
            found = answer.json()
            job = found.get("job") if "valid" in found else found
            if job is not None:
                jobs = "../lifecycle/jobs" if "lifecycle" in path else "/jobs"
                while job["status"] not in ("done", "failed"):
                    time.sleep(0.2)
                    job = client.get(f"{jobs}/{job['id']}").json()
                if job["status"] == "failed":
                    raise SystemExit(f"{name}: {job['error']}")
                if "valid" in found and "lifecycle" not in path:  # now the snapshot is kept
                    client.post(path, json=body).raise_for_status()
            print(
                f"{name:30} answered in {answered * 1000:7.0f} ms;"
                f" {'job ' if job is not None else ''}done in"
                f" {time.perf_counter() - wall:7.2f} s wall {time.process_time() - cpu:7.2f} s CPU"
            )
    print(f"load after: {os.getloadavg()[0]:.1f}")
    server.stop()
    db.dispose()


if __name__ == "__main__":
    main()
