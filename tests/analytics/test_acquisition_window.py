"""Acquisition economics: spend files refuse what cannot be added up, the default window covers
whole spend periods, and the value horizon is apart from the acquisition window. Expected
figures are worked out by hand in each docstring."""

from __future__ import annotations

from pathlib import Path

import pytest

from clm.analytics import import_spend, run_report
from clm.analytics.spend import load_spend, parse_spend_csv
from clm.errors import ValidationError
from clm.ingest import ingest
from clm.store.engine import Database
from tests.analytics.logs import event, load
from tests.analytics.test_cli import run


@pytest.mark.parametrize(
    ("amount", "message"),
    [("nan", "finite"), ("inf", "finite"), ("-Infinity", "finite"), ("-5", "negative")],
)
def test_amounts_that_cannot_be_added_are_refused(amount: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_spend_csv(f"channel,month,amount\nemail,2024-01,5\nsearch,2024-01,{amount}\n")
    (error,) = caught.value.errors
    assert error.loc == ("line", 3, "amount") and message in error.message


def test_one_currency_per_workspace(sqlite_db: Database) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_spend_csv("channel,month,amount,currency\nemail,2024-01,5,USD\n"
                        "search,2024-01,7,\nsocial,2024-01,9,EUR\n")  # fmt: skip
    (error,) = caught.value.errors
    assert error.loc == ("line", 4, "currency") and "USD" in error.message
    workspace_id, _, _ = load(sqlite_db, [])
    import_spend(sqlite_db, workspace_id, "channel,month,amount,currency\nemail,2024-01,5,USD\n")
    with pytest.raises(ValidationError) as stored:
        import_spend(sqlite_db, workspace_id,
                     "channel,month,amount,currency\nemail,2024-02,5,EUR\n")  # fmt: skip
    assert "USD" in stored.value.errors[0].message
    assert [r.amount for r in load_spend(sqlite_db, workspace_id)] == [5.0]  # nothing stored


def test_the_cli_says_which_line_in_one_line(tmp_path: Path) -> None:
    address = f"sqlite:///{tmp_path / 'spend.sqlite'}"
    db = Database.open(address)
    load(db, [])
    db.dispose()
    spend = tmp_path / "spend.csv"
    spend.write_text("channel,month,amount\nemail,2024-01,5\nsearch,2024-01,nan\n")
    code, out, err = run(address, "import-spend", str(spend))
    assert code == 1 and "Traceback" not in err + out
    assert len(err.strip().splitlines()) == 1 and "line.3.amount" in err.replace(" ", ".")


def _shop(db: Database) -> int:
    """r finds the shop by search on 01-15 and buys 40 on 01-16, 80 more on 04-15 (day 90:
    the 4th 30-day month); CLM scores r (clv_12m 500) on 04-10. s buys on 02-20 (direct).
    Spend: search 310 in January, 290 in February."""
    messages = [
        event("r", "2024-01-15", "Ad Clicked", "r1", channel="search"),
        event("r", "2024-01-16", "Order Completed", "r2", revenue=40),
        event("s", "2024-02-20", "Order Completed", "s1", revenue=10),
    ]
    workspace_id, _, _ = load(db, messages)
    import_spend(db, workspace_id, "channel,month,amount\nsearch,2024-01,310\nsearch,2024-02,290\n")
    return workspace_id


def test_the_default_window_covers_whole_spend_periods(db: Database) -> None:
    """The customers' span is 01-15 .. 02-20; the default window widens to January's start and
    February's end, so search's spend is 310 + 290 = 600 (cut at the first and last events it
    would be 310 * 17/31 + 290 * 19/29, about 360)."""
    workspace_id = _shop(db)
    report = run_report(db, workspace_id, "acquisition")
    rows = {c.value: c for c in report.channels}  # type: ignore[attr-defined]
    assert rows["search"].spend == 600.0
    assert (report.since.isoformat()[:10], report.until.isoformat()[:10]) == (
        "2024-01-01",
        "2024-03-01",
    )
    # an explicit window is kept: half of January
    half = run_report(
        db, workspace_id, "acquisition", {"since": "2024-01-01", "until": "2024-01-16T12:00:00"}
    )
    assert {c.value: c.spend for c in half.channels}["search"] == round(310 * 15.5 / 31, 6)  # type: ignore[attr-defined]


def test_one_quarter_s_new_customers_valued_later(db: Database) -> None:
    """Acquisition window Q1; r's score and second purchase come in April.
    * default horizon (the whole log): CLV 500, CAC 600 / 1, CLV:CAC 500/600; revenue per
      customer 40 (month 0), 120 by month 3 (04-15 is day 90): CAC 600 never reached;
    * horizon 04-01 (the window's end): nothing known yet: CLV None."""
    workspace_id = _shop(db)
    db_events = [event("r", "2024-04-15", "Order Completed", "r3", revenue=80)]
    score = event("r", "2024-04-10", "Prediction Scored", "clm-pred-9-r", clv_12m=500.0)
    score["context"] = {"channel": "system"}
    assert ingest(db, workspace_id, db_events).stored == 1
    assert ingest(db, workspace_id, [score], own=True).stored == 1
    window = {"since": "2024-01-01", "until": "2024-04-01"}
    later = run_report(db, workspace_id, "acquisition", window)
    search = {c.value: c for c in later.channels}["search"]  # type: ignore[attr-defined]
    assert (search.new_customers, search.spend, search.cac) == (1, 600.0, 600.0)
    assert (search.clv_12m, search.clv_to_cac) == (500.0, round(500 / 600, 6))
    assert later.value_until is None  # type: ignore[attr-defined]
    now = run_report(db, workspace_id, "acquisition", {**window, "value_until": "2024-04-01"})
    assert {c.value: c.clv_12m for c in now.channels}["search"] is None  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        run_report(db, workspace_id, "acquisition", {**window, "value_until": "2024-03-01"})


def test_payback_counts_revenue_up_to_the_horizon(db: Database) -> None:
    """Search spends 100 in January, window January: r pays 40 on 01-16 (month 0) and 80 on
    04-15 (day 90: month 3), so revenue per customer reaches CAC 100 in the 4th month with the
    whole log, and never with the horizon at 04-01."""
    workspace_id, _, _ = load(db, [
        event("r", "2024-01-15", "Ad Clicked", "r1", channel="search"),
        event("r", "2024-01-16", "Order Completed", "r2", revenue=40),
        event("r", "2024-04-15", "Order Completed", "r3", revenue=80),
    ])  # fmt: skip
    import_spend(db, workspace_id, "channel,month,amount\nsearch,2024-01,100\n")
    window = {"since": "2024-01-01", "until": "2024-02-01"}
    whole = run_report(db, workspace_id, "acquisition", window)
    assert {c.value: c.payback_months for c in whole.channels}["search"] == 4  # type: ignore[attr-defined]
    cut = run_report(db, workspace_id, "acquisition", {**window, "value_until": "2024-04-01"})
    assert {c.value: c.payback_months for c in cut.channels}["search"] is None  # type: ignore[attr-defined]
