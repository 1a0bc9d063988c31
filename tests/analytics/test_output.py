"""Report output for people and for programs: formatted numbers, no truncation, one file per
table that pandas reads back to the report's own JSON, Parquet too, progress and a summary."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from clm.cli import app
from clm.cli._tables import format_value
from tests.analytics.scenario import SINCE, UNTIL
from tests.analytics.test_cli import one_line, run, url  # noqa: F401 - the fixture

PERIOD = ["--since", SINCE, "--until", UNTIL]


@pytest.mark.parametrize(
    ("value", "kind", "shown"),
    [
        (0.494782, "share", "49.5%"), (1318755.93, "money", "1,318,755.93"),
        (23570, "count", "23,570"), (5.6667, "days", "5.7"), (-12.5, "number", "-12.50"),
        (37.5, "percent", "37.5%"), (None, "share", ""), ("Champions", "text", "Champions"),
    ],
)  # fmt: skip
def test_numbers_read_as_people_write_them(value: object, kind: str, shown: str) -> None:
    assert format_value(value, kind) == shown


def test_csv_directory_one_file_per_table_read_back_by_pandas(url: str, tmp_path: Path) -> None:  # noqa: F811
    code, out, err = run(url, "churn_retention", *PERIOD, "-f", "json")
    assert code == 0, err
    report = json.loads(out)
    code, _, err = run(url, "churn_retention", *PERIOD, "-f", "csv", "-o", str(tmp_path / "c"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "churn_retention-at_risk.csv", "churn_retention-retention.csv"]  # fmt: skip
    retention = pd.read_csv(tmp_path / "c" / "churn_retention-retention.csv")
    assert list(retention["period"]) == [p["period"] for p in report["periods"]]
    assert list(retention["revenue"]) == [p["revenue"] for p in report["periods"]]
    assert list(retention["churn rate"].fillna(-1)) == [
        -1 if p["churn_rate"] is None else p["churn_rate"] for p in report["periods"]]  # fmt: skip
    code, _, err = run(url, "churn_retention", *PERIOD, "-f", "parquet", "-o", str(tmp_path / "p"))
    assert code == 0, err
    parquet = pd.read_parquet(tmp_path / "p" / "churn_retention-retention.parquet")
    assert list(parquet["new"]) == [p["new"] for p in report["periods"]]
    assert str(parquet["new"].dtype) == "int64" and str(parquet["revenue"].dtype) == "float64"
    assert "2 csv files" not in err and "2 parquet files" in err  # the closing summary


def test_tables_are_not_cut_on_a_narrow_terminal(url: str) -> None:  # noqa: F811
    result = CliRunner().invoke(
        app, ["report", "attribution", *PERIOD, "-w", "acme", "--database-url", url],
        env={"COLUMNS": "60"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "…" not in result.stdout
    # every credit column is there, headed in full
    for column in ("position", "markov", "shapley", "journeys", "converted", "conv. rate"):
        assert column in result.stdout


def test_feedback_heads_each_figure(url: str) -> None:  # noqa: F811
    code, out, err = run(url, "feedback", *PERIOD)
    assert code == 0, err
    text = one_line(out)
    assert "NPS" in text and "CSAT % satisfied" in text and "CES mean" in text
    assert "value" not in text.split("Definitions")[0].lower().split()


def test_playbook_list_is_a_table(tmp_path: Path) -> None:
    """The trigger and goal in words, not a Python dict."""
    from clm.store.engine import Database
    from tests.analytics.logs import load

    address = f"sqlite:///{tmp_path / 'engage.sqlite'}"
    db = Database.open(address)
    load(db, [])  # workspace "acme"
    db.dispose()
    playbook = Path(__file__).parents[2] / "src/clm/engage/data/playbooks/winback.yaml"
    base = ["-w", "acme", "--database-url", address]
    applied = CliRunner().invoke(app, ["playbook", "apply", str(playbook), *base])
    assert applied.exit_code == 0, applied.stderr
    listed = CliRunner().invoke(app, ["playbook", "list", *base], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.stderr
    text = one_line(listed.stdout)
    assert "{" not in text and "'type'" not in text
    row = ("│ winback │ 1 │ active │ health changed to at_risk │ 4 │ "
           "Order Completed within 30 days │ 10% │")  # fmt: skip
    assert row in text
