"""``clm report`` on an embedded database holding the hand-built scenario (scenario.py): the
numbers are those worked out in test_funnel_retention.py, read back through each format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clm.analytics import REPORTS
from clm.cli import app
from clm.store.engine import Database
from tests.analytics.logs import load, write_history
from tests.analytics.scenario import HISTORY, MESSAGES, SINCE, UNTIL


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite file holding the scenario in workspace ``acme``."""
    address = f"sqlite:///{tmp_path / 'reports.sqlite'}"
    db = Database.open(address)
    workspace_id, customers, definition_id = load(db, MESSAGES)
    write_history(db, workspace_id, definition_id, customers, HISTORY)
    db.dispose()
    return address


def run(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app, ["report", *args, "-w", "acme", "--database-url", url], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.stdout, result.stderr


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_funnel_as_json_table_and_csv(url: str) -> None:
    code, out, err = run(url, "funnel", "--since", SINCE, "--until", UNTIL, "--format", "json")
    assert code == 0, err
    steps = {(s["from_stage"], s["to_stage"]): s for s in json.loads(out)["steps"]}
    assert (steps[("lead", "trial")]["entered"], steps[("lead", "trial")]["converted"]) == (4, 3)
    code, out, _ = run(url, "funnel", "--since", SINCE, "--until", UNTIL)
    assert code == 0 and "Customers per stage at 2024-04-01" in one_line(out)
    # a share as a percentage; 3 customers timed (a 5 days, b 10, e 1)
    assert "│ lead │ trial │ 4 │ 3 │ 1 │ 75.0% │ 3 │ 5.0 │ 10.0 │" in one_line(out)
    assert "Definitions:" in out
    code, out, _ = run(url, "funnel", "--since", SINCE, "--until", UNTIL, "--at", "2024-02-10",
                       "-f", "csv", "--table", "stages")  # fmt: skip
    assert code == 0
    # before 02-10: a paying, b trial, c churned, d lead
    assert out.splitlines() == ["stage,customers", "lead,1", "trial,1", "paying,1", "loyal,0",
                                "churned,1"]  # fmt: skip


def test_filters_and_report_options(url: str) -> None:
    # customers in paying at 04-01: a and c; both reached paying (a 01-20, c 01-03)
    code, out, err = run(url, "funnel", "--since", SINCE, "--until", UNTIL, "--stage", "paying",
                         "-f", "json")  # fmt: skip
    assert code == 0, err
    assert {c["stage"]: c["customers"] for c in json.loads(out)["counts"]}["paying"] == 2
    code, out, err = run(url, "churn_retention", "--since", SINCE, "--until", UNTIL,
                         "--granularity", "quarter", "-f", "json")  # fmt: skip
    assert code == 0, err
    (quarter,) = json.loads(out)["periods"]
    # buyers only: nobody had bought before Q1; c churns in it (b never bought)
    assert (quarter["period"], quarter["active_at_start"], quarter["churned"]) == ("2024-Q1", 0, 1)
    code, out, err = run(url, "attribution", "--since", SINCE, "--until", UNTIL,
                         "--from-stage", "lead", "--to-stage", "trial", "--model", "last_touch",
                         "--lookback-days", "45", "--half-life", "3", "-f", "csv")  # fmt: skip
    assert code == 0, err
    header = out.splitlines()[0]  # the report's only table: CSV on stdout
    assert header == "value,last,journeys,converted,conv. rate"


def test_every_report_runs_on_duckdb(url: str) -> None:
    for name in REPORTS:
        code, out, err = run(url, name, "--since", SINCE, "--until", UNTIL, "--engine", "duckdb",
                             "-f", "json")  # fmt: skip
        assert code == 0, (name, err)
        assert json.loads(out)["report"] == name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["funnel", "--since", "2024-13-01"], "since: Input should be a valid datetime"),
        (["rfm", "--since", UNTIL, "--until", SINCE], "since: must be before until"),
        (["rfm", "--segment", "Gold"], "segment: Value error, unknown segment"),
        (["cohorts", "--max-age", "zero"], "max_age: Input should be a valid integer"),
        (["attribution", "--by", "colour"], "dimension: Input should be 'channel'"),
        (["attribution", "--model", "magic"], "model: one of: first_touch"),
        (["funnel", "--stage", "vip"], "stage: unknown stage 'vip'"),
        (["rfm", "--engine", "oracle"], "engine: one of: sql, duckdb, spark"),
        (["rfm", "--format", "xml"], "format: one of: table, json, csv"),
        (["funnel", "--format", "csv"], "5 tables (stages, funnel, backward, reentries, flow)"),
        (["funnel", "--format", "csv", "--table", "nope"], "table: one of: stages, funnel"),
        (["funnel", "--format", "parquet"], "needs --output DIR"),
    ],
)
def test_bad_parameters_are_one_line_errors(url: str, args: list[str], message: str) -> None:
    code, out, err = run(url, *args)
    assert code == 1
    assert err.startswith("error: ") and message in one_line(err)
    assert "Traceback" not in out + err


def test_import_spend_then_acquisition(url: str, tmp_path: Path) -> None:
    spend = tmp_path / "spend.csv"
    spend.write_text("channel,month,amount\nemail,2024-01,90\nsearch,2024-13,5\n")
    code, _, err = run(url, "import-spend", str(spend))
    assert code == 1 and "line.3.period: invalid month or dates" in one_line(err)
    spend.write_text("channel,month,amount\nemail,2024-01,90\n")
    code, out, err = run(url, "import-spend", str(spend), "-f", "json")
    assert code == 0 and json.loads(out) == {"stored": 1}, err
    code, out, err = run(url, "acquisition", "--since", SINCE, "--until", UNTIL, "-f", "json")
    assert code == 0, err
    email = {c["value"]: c for c in json.loads(out)["channels"]}["email"]
    # first purchases in Q1: a (01-20, first touch email on 01-05) and c (01-03, search in 2023)
    assert (email["spend"], email["new_customers"], email["cac"]) == (90.0, 1, 90.0)
    code, _, err = run(url, "import-spend", str(tmp_path / "missing.csv"))
    assert code == 1 and "Cannot read" in err
