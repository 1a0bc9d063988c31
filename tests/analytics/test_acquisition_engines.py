"""The acquisition report reads the same customers, first touches, scores and revenue whichever
way the source gets them: from the log (SQL engines, a one-shot DuckDB source, a customer
filter) or from what a snapshot source keeps after ``prepare_source`` (churn's purchases and
scores, attribution's sorted touchpoints). Expected figures are worked out by hand below."""

from __future__ import annotations

from typing import Any

import pytest

from clm.analytics import AcquisitionQuery, acquisition, import_spend, parse_query, prepare_source
from clm.analytics.attribution import kept_touchpoints
from clm.analytics.journey_paths import Touchpoints
from clm.analytics.source import report_source
from clm.analytics.spend import load_spend
from clm.ingest import ingest
from clm.store.engine import Database
from clm.store.own_events import OWN_CHANNEL
from tests.analytics.logs import event, load

JANUARY = {"since": "2024-01-01", "until": "2024-02-01"}
SPARK = pytest.param(
    "spark", True, marks=[pytest.mark.slow, pytest.mark.filterwarnings("ignore::ResourceWarning")]
)


def _own(message: dict[str, Any]) -> dict[str, Any]:
    message["context"] = {**message.get("context", {}), "channel": OWN_CHANNEL}
    return message


def _shop(db: Database) -> int:
    """January's new customers, by first purchase of their own:

    * p: two touchpoints in the same second on 01-02 10:00, social ``p-b`` (campaign spring,
      sent first) and email ``p-a`` (campaign winter): the first by message id is ``p-a``.
      Buys 40 on 01-03 and 60 on 02-05 (day 33: the 2nd 30-day month). Scored clv 100 on
      01-15 and clv 200 on 02-03.
    * q: CLM emails q on 01-01 (system channel: never a touch); social visit 01-04 (no
      campaign); buys 30 on 01-05.
    * u: buys 20 on 01-06, then visits from search on 01-10: no touch up to the purchase.
    * w: email ad 01-07 (campaign winter); buys 50 on 01-09; CLM scores w on 01-20 with a CLV
      and no P(alive).
    * not new in January: v (first purchase 2023-12-20, again 01-08) and x (buys 02-11).

    Spend in January: email 100, social 60, search 10.
    """
    messages = [
        event("p", "2024-01-02T10:00:00", "Page Viewed", "p-b", channel="social",
              campaign="spring"),
        event("p", "2024-01-02T10:00:00", "Ad Clicked", "p-a", channel="email",
              campaign="winter"),
        event("p", "2024-01-03", "Order Completed", "p2", revenue=40),
        event("p", "2024-02-05", "Order Completed", "p3", revenue=60),
        event("p", "2024-01-15", "Prediction Scored", "p4", clv_12m=100, p_alive=0.5),
        event("p", "2024-02-03", "Prediction Scored", "p5", clv_12m=200, p_alive=0.6),
        event("q", "2024-01-04", "Page Viewed", "q1", channel="social"),
        event("q", "2024-01-05", "Order Completed", "q2", revenue=30),
        event("u", "2024-01-06", "Order Completed", "u1", revenue=20),
        event("u", "2024-01-10", "Page Viewed", "u2", channel="search"),
        event("v", "2023-12-19", "Ad Clicked", "v1", channel="email"),
        event("v", "2023-12-20", "Order Completed", "v2", revenue=10),
        event("v", "2024-01-08", "Order Completed", "v3", revenue=15),
        event("w", "2024-01-07", "Ad Clicked", "w1", channel="email", campaign="winter"),
        event("w", "2024-01-09", "Order Completed", "w2", revenue=50),
        event("x", "2024-02-10", "Page Viewed", "x1", channel="social"),
        event("x", "2024-02-11", "Order Completed", "x2", revenue=5),
    ]  # fmt: skip
    workspace_id, _, _ = load(db, messages)
    own = [
        _own(event("q", "2024-01-01", "Email Sent", "clm-q1")),
        _own(event("w", "2024-01-20", "Prediction Scored", "clm-pred-w", clv_12m=300)),
    ]
    assert ingest(db, workspace_id, own, own=True).stored == 2
    spend = "channel,month,amount\nemail,2024-01,100\nsocial,2024-01,60\nsearch,2024-01,10\n"
    assert import_spend(db, workspace_id, spend) == 3
    return workspace_id


def _rows(db: Database, workspace_id: int, engine: str, prepare: bool, params: dict[str, Any],
          spark: Any = None) -> dict[str, tuple[Any, ...]]:  # fmt: skip
    query = parse_query(AcquisitionQuery, params)
    with report_source(db, workspace_id, engine, spark=spark) as source:  # type: ignore[arg-type]
        if prepare:
            prepare_source(source)
            # the kept path is the one under test: churn's tables and attribution's
            # touchpoints are there
            assert source.derives("retention_events", "first_purchases") == source.snapshot
            assert (kept_touchpoints(source, "channel") is not None) == source.snapshot
        report = acquisition(source, query, load_spend(db, workspace_id))
    return {c.value: (c.new_customers, c.spend, c.cac, c.clv_12m, c.clv_to_cac, c.payback_months)
            for c in report.channels}  # fmt: skip


CASES = [("sql", False), ("duckdb", False), ("duckdb", True), SPARK]


@pytest.mark.parametrize(("engine", "prepare"), CASES)
def test_first_touch_scores_and_payback(
    db: Database, engine: str, prepare: bool, request: pytest.FixtureRequest
) -> None:
    """email: p and w, CAC 100 / 2 = 50, CLV (200 + 300) / 2 = 250, CLV:CAC 5; revenue per
    customer (40 + 50) / 2 = 45 in month 0, + 60 / 2 = 75 by month 1: paid back in month 2.
    social: q, CAC 60, no score, 30 never reaches 60. (direct): u. search: spend, no one."""
    spark = request.getfixturevalue("spark") if engine == "spark" else None
    workspace_id = _shop(db)
    assert _rows(db, workspace_id, engine, prepare, JANUARY, spark) == {
        "email": (2, 100.0, 50.0, 250.0, 5.0, 2),
        "social": (1, 60.0, 60.0, None, None, None),
        "(direct)": (1, None, None, None, None, None),
        "search": (0, 10.0, None, None, None, None),
    }


@pytest.mark.parametrize(("engine", "prepare"), CASES)
def test_horizon_campaign_and_filter(
    db: Database, engine: str, prepare: bool, request: pytest.FixtureRequest
) -> None:
    """* Value horizon 02-01 (the window's end): p's latest score then is 100 (email CLV
      (100 + 300) / 2 = 200, CLV:CAC 4); p's 60 on 02-05 is after it: 45 per customer never
      reaches 50.
    * By campaign: p's first touch is ``p-a`` (winter), w's winter: 2; q's touch has no
      campaign and u has none before buying: (direct) 2. The spend names no campaign: its
      170 is under ``(none)``, with no customers.
    * Customers with a social touch in January: p (``p-b``) and q; p still came by email."""
    spark = request.getfixturevalue("spark") if engine == "spark" else None
    workspace_id = _shop(db)
    later = _rows(db, workspace_id, engine, prepare, {**JANUARY, "value_until": "2024-02-01"},
                  spark)  # fmt: skip
    assert later["email"] == (2, 100.0, 50.0, 200.0, 4.0, None)
    campaigns = _rows(db, workspace_id, engine, prepare, {**JANUARY, "dimension": "campaign"},
                      spark)  # fmt: skip
    assert campaigns == {"winter": (2, None, None, 250.0, None, None),
                         "(direct)": (2, None, None, None, None, None),
                         "(none)": (0, 170.0, None, None, None, None)}  # fmt: skip
    social = _rows(db, workspace_id, engine, prepare, {**JANUARY, "channel": "social"}, spark)
    assert {value: row[0] for value, row in social.items()} == {"email": 1, "social": 1,
                                                                "search": 0}  # fmt: skip


def test_each_customers_first_touchpoint() -> None:
    """``Touchpoints.firsts``: the head of each customer's block, ties at one second in
    message id order (customer 7: ``b`` then ``a`` at second 5 -> ``a``'s value); none for no
    touchpoints."""
    import pyarrow as pa

    table = pa.table({
        "customer_id": pa.array([3, 3, 7, 7, 7], pa.int64()),
        "touch_ts": pa.array([9, 12, 5, 5, 8], pa.int64()),
        "value": ["social", "email", "search", "email", "social"],
        "touch_id": ["x", "y", "b", "a", "c"],
    })  # fmt: skip
    firsts = Touchpoints.from_arrow(table).firsts().to_pylist()
    assert firsts == [{"customer_id": 3, "first_ts": 9, "value": "social"},
                      {"customer_id": 7, "first_ts": 5, "value": "email"}]  # fmt: skip
    empty = Touchpoints.from_arrow(table.slice(0, 0)).firsts()
    assert empty.num_rows == 0 and empty.column_names == ["customer_id", "first_ts", "value"]
