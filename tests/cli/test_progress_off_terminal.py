"""Long commands off a terminal (issue 15 item 5): with stdout a pipe, as under cron or in a log
file, nobody sees a progress bar, so ``clm health run`` writes a timestamped log line on stderr
for each step and ends with a summary there, while stdout keeps only the result."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clm.ingest.service import ingest
from clm.store.engine import Database
from tests.lifecycle.logs import DAY, message, new_workspace

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"  # the log line's UTC time, as progress_line writes it
# three customers: two buyers and one who only signed up (a lead)
LOG = [
    message("a", 0, "a1", kind="identify"),
    message("a", DAY, "a2", "Order Completed", revenue=30),
    message("b", 2 * DAY, "b1", kind="identify"),
    message("b", 3 * DAY, "b2", "Order Completed", revenue=12),
    message("b", 9 * DAY, "b3", "Order Completed", revenue=8),
    message("c", 4 * DAY, "c1", "Signed Up"),
]


def clm(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    """``python -m clm`` as a user runs it from a script: stdout and stderr are pipes."""
    return subprocess.run(
        [sys.executable, "-m", "clm", *args, "--database-url", url, "-w", "acme"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "200", "TERM": "dumb"},
    )  # fmt: skip


@pytest.mark.slow  # two runs of python -m clm (imports, DuckDB): ~10 s each on a quiet machine
def test_health_run_logs_each_step_and_a_summary_when_stdout_is_a_pipe(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'clm.sqlite'}"
    db = Database.open(url)
    ingest(db, new_workspace(db), LOG)
    db.dispose()
    run = clm("health", "run", "--now", "2030-01-01", "--format", "json", url=url)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)  # stdout is the result alone: no bar, no log line in it
    lines = run.stderr.strip().splitlines()
    assert all(re.match(rf"{STAMP} clm health run: ", line) for line in lines), run.stderr
    # one line per step the pass names, numbered out of the 7 a pass with history takes
    steps = [line for line in lines if re.search(r"\(\d/7\)$", line)]
    assert len(steps) >= 4 and steps[0].endswith("(1/7)"), run.stderr
    # the summary: every customer in the log scored (3, counted by hand above), and the time
    assert summary["scored"] == 3
    rows = summary["history_rows"]
    assert re.fullmatch(
        rf"{STAMP} clm health run: 3 customers scored, {rows:,} history rows, in \d+\.\d s",
        lines[-1],
    ), lines[-1]
    # the table format prints the same summary for people on stdout, and the same log lines
    table = clm("health", "run", "--now", "2030-01-02", "--no-history", url=url)
    assert table.returncode == 0, table.stderr
    assert "3 customers as of 2030-01-02" in table.stdout
    assert "\x1b[" not in table.stdout + table.stderr  # no bar, no escape codes off a terminal
    last = table.stderr.strip().splitlines()
    assert re.search(r"\(1/4\)$", last[0]) and "3 customers scored, in" in last[-1], table.stderr
