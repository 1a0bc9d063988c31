"""``clm playbook report`` in the words of the web app's report: conversion rates as
percentages and the uplift with its interval in percentage points (it printed raw decimals,
"uplift 0.25 (95% CI -0.5626 .. 1.0626)", a figure people read as 0.25%)."""

from __future__ import annotations

from typer.testing import CliRunner

from clm.cli import app
from clm.cli._common import percent, percentage_points
from clm.engage.playbooks import service as pb
from clm.store.engine import Database
from tests.engage.test_playbook_outcomes import BASE, DAY, GOAL, Log, _book


def report_text(db: Database, slug: str, name: str) -> str:
    url = db.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(
        app, ["playbook", "report", name, "-w", slug, "--database-url", url],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())


def test_report_prints_rates_in_percent_and_uplift_in_points(sqlite_db: Database) -> None:
    db = sqlite_db  # the CLI in-process keeps its pool open: on PostgreSQL a leaked connection
    log = Log(db, "shop", 6)
    book = pb.apply_playbook(db, log.ws, _book("buy", {"event": GOAL, "within_days": 10}))
    for i in range(6):  # u0, u1 held out; u2..u5 treated
        log.enrol(
            book.id,
            "buy",
            log.customer("user_id", f"u{i}"),
            BASE,
            "control" if i < 2 else "completed",
        )
    for i in (0, 2, 3, 4):  # one of two held out, three of four treated reach the goal
        log.track(f"u{i}", GOAL, BASE + DAY)
    # 75% against 50%: +25 pp, Wald interval 0.25 ± 1.96 × √(0.75·0.25/4 + 0.5·0.5/2).
    text = report_text(db, "shop", "buy")
    assert "treatment │ 4 │ 3 │ 75%" in text and "control │ 2 │ 1 │ 50%" in text, text
    assert "uplift +25 pp (95% CI −56.3 to +106.3 pp): not distinguishable from the holdout" in text
    assert "0.25" not in text and "0.75" not in text

    # No holdout answers yet: said in words, not "None".
    empty = pb.apply_playbook(db, log.ws, _book("idle", {"event": GOAL, "within_days": 10}))
    assert empty.name == "idle"
    text = report_text(db, "shop", "idle")
    assert "uplift: not enough data" in text and "None" not in text


def test_percent_and_percentage_points_read_like_the_web_app() -> None:
    assert [percent(r) for r in (0.176, 0.5, 1.0, 0.0, None)] == ["17.6%", "50%", "100%", "0%", ""]
    assert percentage_points(0.032) == "+3.2 pp"
    assert percentage_points(-0.004) == "\u22120.4 pp"
    assert percentage_points(0.0004) == "0 pp"  # rounds to zero: no sign
    assert percentage_points(-0.12567) == "\u221212.6 pp"
    assert percentage_points(None) == ""
