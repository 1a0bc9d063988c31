"""One definition, every engine: each report gives the same answer on SQLite, PostgreSQL
(the ``db`` fixture), DuckDB and Spark as the SQL engine on the hand-checked scenario."""

from __future__ import annotations

from typing import Any

import pytest

from clm.analytics import REPORTS, import_spend, run_on
from clm.analytics.query import parse_query
from clm.analytics.source import report_source
from tests.analytics.conftest import Loaded
from tests.analytics.scenario import SINCE, UNTIL

# Spark once per session (the ``spark`` fixture); its Py4J sockets warn when garbage-collected.
SPARK = pytest.param(
    "spark", marks=[pytest.mark.slow, pytest.mark.filterwarnings("ignore::ResourceWarning")]
)
PARAMS: dict[str, dict[str, Any]] = {
    "funnel": {},
    "churn_retention": {},
    "cohorts": {"cohort_by": "first_purchase"},
    "rfm": {},
    "attribution": {"lookback_days": 45},
    "acquisition": {},
    "feedback": {},
}


def _all_reports(scenario: Loaded, engine: str, spark: Any = None) -> dict[str, Any]:
    results = {}
    with report_source(scenario.db, scenario.workspace_id, engine, spark=spark) as source:  # type: ignore[arg-type]
        for name in REPORTS:
            query = parse_query(REPORTS[name].query, {"since": SINCE, "until": UNTIL,
                                                      **PARAMS[name]})  # fmt: skip
            report = run_on(source, name, query, scenario.db, scenario.workspace_id)
            results[name] = report.model_dump(mode="json")
    return results


@pytest.mark.parametrize("engine", ["duckdb", SPARK])
def test_every_report_is_equal_on_every_engine(
    scenario: Loaded, engine: str, request: pytest.FixtureRequest
) -> None:
    import_spend(scenario.db, scenario.workspace_id, "channel,month,amount\nemail,2024-01,90\n")
    spark = request.getfixturevalue("spark") if engine == "spark" else None
    expected = _all_reports(scenario, "sql")
    assert expected["funnel"]["steps"][0]["entered"] == 4  # the scenario really loaded
    assert _all_reports(scenario, engine, spark) == expected
