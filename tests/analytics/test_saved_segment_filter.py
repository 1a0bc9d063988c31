"""A report filtered to a saved segment's current members (``saved_segment``), through
``run_report``, the API and ``clm report``: the totals are worked out by hand from the log
written here; the RFM ``segment`` filter keeps its meaning beside it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from clm.analytics import run_report
from clm.cli import app
from clm.errors import ValidationError
from clm.lifecycle.conditions import Condition
from clm.lifecycle.saved_segments import SegmentCreate, create_segment
from clm.store import workspaces as ws
from clm.store.engine import Database
from tests.analytics.logs import event, load
from tests.conftest import LiveServer


def _shop(db: Database) -> int:
    """u1..u5: u_i buys i times, 10*i each time; u2 and u4 are on the gold plan."""
    messages = [
        event(f"u{i}", f"2024-03-{i:02d}", "Order Completed", f"u{i}-{k}", revenue=10 * i)
        for i in range(1, 6)
        for k in range(i)
    ]
    messages += [
        {"type": "identify", "userId": u, "messageId": f"plan-{u}", "traits": {"plan": "gold"},
         "timestamp": "2024-02-01T00:00:00Z"}
        for u in ("u2", "u4")
    ]  # fmt: skip
    workspace_id, _, _ = load(db, messages)
    gold = [Condition(attr="traits.plan", value="gold")]
    create_segment(db, workspace_id, SegmentCreate(name="gold", conditions=gold), "test")
    return workspace_id


# u2: 2 purchases of 20; u4: 4 of 40.
GOLD_REVENUE, GOLD_BUYERS = 2 * 20 + 4 * 40, 2


@pytest.mark.parametrize("engine", ["sql", "duckdb"])
def test_rfm_of_a_saved_segment(db: Database, engine: str) -> None:
    workspace_id = _shop(db)
    report = run_report(db, workspace_id, "rfm", {"saved_segment": "gold"}, engine=engine)  # type: ignore[arg-type]
    assert sum(s.customers for s in report.segments) == GOLD_BUYERS
    assert sum(s.revenue for s in report.segments) == pytest.approx(GOLD_REVENUE)
    everyone = run_report(db, workspace_id, "rfm", {}, engine=engine)  # type: ignore[arg-type]
    assert sum(s.revenue for s in everyone.segments) == pytest.approx(sum(
        i * 10 * i for i in range(1, 6)))  # fmt: skip
    # With the RFM segment filter too: u5 is the only Champion, not gold: nobody.
    both = run_report(db, workspace_id, "rfm", {"saved_segment": "gold", "segment": "Champions"})
    assert sum(s.customers for s in both.segments) == 0
    with pytest.raises(ValidationError) as caught:
        run_report(db, workspace_id, "rfm", {"saved_segment": "silver"})
    [error] = caught.value.errors
    assert error.loc == ("saved_segment",) and "saved segments: gold" in error.message


def test_saved_segment_over_the_api(live_server: LiveServer) -> None:
    workspace_id = _shop(live_server.db)
    with live_server.db.transaction() as session:
        key = ws.issue_key(session, "read", workspace_id).key
    url = f"{live_server.url}/api/v1/reports/rfm"
    headers = {"Authorization": f"Bearer {key}"}
    body = httpx.get(url, params={"saved_segment": "gold"}, headers=headers).json()
    assert sum(s["revenue"] for s in body["segments"]) == pytest.approx(GOLD_REVENUE)
    missing = httpx.get(url, params={"saved_segment": "nope"}, headers=headers)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"] == ["saved_segment"]


def test_saved_segment_on_the_command_line(tmp_path: Path) -> None:
    address = f"sqlite:///{tmp_path / 'reports.sqlite'}"
    db = Database.open(address)
    _shop(db)
    db.dispose()
    result = CliRunner().invoke(app, ["report", "rfm", "-w", "acme", "--database-url", address,
                                      "--saved-segment", "gold", "-f", "json"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    segments = json.loads(result.stdout)["segments"]
    assert sum(s["revenue"] for s in segments) == pytest.approx(GOLD_REVENUE)
