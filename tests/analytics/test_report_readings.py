"""The reports' stored readings (``clm.analytics.report_readings``): a stored reading equals
the report computed directly (and the scenario's hand-worked figures); a restarted process
answers from storage without reading the log; every change a report reads makes its reading
not current (checked as a property: whenever a report computed afresh differs, its version
differs) and the refresh lands; changes it does not read leave it current; the live loop
stores each report's default view once; over HTTP a first reading says ``ready: false`` until
it lands and ``fresh=true`` computes now. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from clm.accounts.audit import Actor
from clm.analytics import report_readings
from clm.analytics.kept import canonical, readings_of
from clm.analytics.overview_readings import refresh_overview
from clm.analytics.query import RetentionQuery, parse_query
from clm.analytics.report_readings import (
    KINDS,
    MAX_KEY,
    kept_report,
    report_params,
    report_version,
)
from clm.analytics.reports import REPORTS, run_report
from clm.analytics.schemas import FunnelReport, RetentionReport, RfmReport
from clm.analytics.spend import import_spend
from clm.errors import ValidationError
from clm.ingest import ingest
from clm.lifecycle.catalog import apply_stage_model
from clm.lifecycle.conditions import Condition
from clm.lifecycle.health_inputs import get_scorecard
from clm.lifecycle.saved_segments import SegmentCreate, create_segment
from clm.privacy import erase_customer
from clm.store import workspaces as ws
from clm.store.engine import Database
from clm.store.models import (
    Customer,
    CustomerState,
    HealthSnapshot,
    OverviewReading,
    StageTransition,
)
from tests.analytics.conftest import Loaded
from tests.analytics.logs import NO_CHURN_MODEL, event, ts
from tests.analytics.scenario import SINCE, UNTIL
from tests.conftest import LiveServer

PERIOD = {"since": SINCE, "until": UNTIL}


def _same_url(db: Database) -> Database:
    """The same database opened again, as a restarted process would: nothing in memory."""
    return Database.open(db.engine.url.render_as_string(hide_password=False), run_migrations=False)


def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every report may be refreshed at once (no interval between two readings)."""
    for name, kind in list(KINDS.items()):
        monkeypatch.setitem(KINDS, name, replace(kind, min_interval=0.0))


def _settled(db: Database, workspace_id: int, name: str, params: dict[str, Any]) -> Any:
    """The kept report once its background refresh has landed (a loaded machine may need
    more than one look)."""
    kept = kept_report(db, workspace_id, name, params)
    for _ in range(40):
        readings_of(db).settle()
        kept = kept_report(db, workspace_id, name, params)
        if kept.current:
            break
        time.sleep(0.25)
    return kept


@pytest.mark.parametrize("name", list(REPORTS))
def test_a_stored_reading_equals_the_report_computed_directly(scenario: Loaded, name: str) -> None:
    db, workspace_id = scenario.db, scenario.workspace_id
    kept = kept_report(db, workspace_id, name, PERIOD)
    direct = run_report(db, workspace_id, name, PERIOD)
    assert kept.current and kept.report == direct
    # as stored (the JSON in the table, read back as a restarted process reads it)
    query = parse_query(REPORTS[name].query, PERIOD)
    stored = readings_of(db).stored(KINDS[name], workspace_id, report_params(query))
    assert stored is not None and stored.value == direct
    assert stored.computed_at == kept.computed_at


def test_the_kept_figures_are_the_hand_worked_ones(scenario: Loaded) -> None:
    """test_funnel_retention works these out from the scenario by hand."""
    db, workspace_id = scenario.db, scenario.workspace_id
    funnel = kept_report(db, workspace_id, "funnel", PERIOD).report
    assert isinstance(funnel, FunnelReport)
    lead = funnel.steps[0]
    assert (lead.entered, lead.converted, lead.dropped) == (4, 3, 1)  # a, b, d, e; d stays
    churn = kept_report(db, workspace_id, "retention", {**PERIOD, "granularity": "month"}).report
    assert isinstance(churn, RetentionReport)  # the alias and the default: one reading
    assert [p.churned for p in churn.periods] == [0, 1, 0]  # c churns in February
    assert [p.revenue for p in churn.periods] == [140.0, 50.0, 90.0]
    with db.session() as session:
        kinds = sorted(r.kind for r in session.query(OverviewReading))
    assert kinds == ["report:churn_retention", "report:funnel"]


def test_a_restarted_process_answers_from_storage(
    scenario: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, workspace_id = scenario.db, scenario.workspace_id
    first = {name: kept_report(db, workspace_id, name, PERIOD) for name in REPORTS}
    restarted = _same_url(db)

    def no_log_reading(*_: object, **__: object) -> object:
        raise AssertionError("the report was computed again")

    monkeypatch.setattr(report_readings, "run_report", no_log_reading)
    try:
        for name in REPORTS:
            again = kept_report(restarted, workspace_id, name, PERIOD)
            assert again == first[name] and again.current
    finally:
        restarted.dispose()


def test_new_data_makes_a_reading_not_current_and_its_refresh_lands(
    scenario: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, workspace_id = scenario.db, scenario.workspace_id
    before = kept_report(db, workspace_id, "funnel", PERIOD)
    assert isinstance(before.report, FunnelReport) and before.report.steps[0].entered == 4
    # f signs up in March: a fifth lead in the period
    ingest(db, workspace_id, [event("f", "2024-03-05", "Signed Up", "f1")])
    with db.session() as session:
        scenario.customers["f"] = session.scalars(
            select(Customer.id).where(Customer.workspace_id == workspace_id,
                                      Customer.user_id == "f")
        ).one()  # fmt: skip
    _transition(scenario, "f", "2024-03-05", None, "lead")
    _no_waiting(monkeypatch)
    # the stored reading answers at once, marked not current; a refresh starts behind it
    outdated = kept_report(db, workspace_id, "funnel", PERIOD)
    assert not outdated.current and outdated.report == before.report
    renewed = _settled(db, workspace_id, "funnel", PERIOD)
    assert renewed.current and isinstance(renewed.report, FunnelReport)
    assert renewed.report.steps[0].entered == 5  # by hand: a, b, d, e and f
    assert renewed.report == run_report(db, workspace_id, "funnel", PERIOD)
    assert renewed.computed_at is not None and before.computed_at is not None
    assert renewed.computed_at > before.computed_at


# --- every input a report reads moves its version -----------------------------------------


def _snapshot(scenario: Loaded, user: str, when: str, state: str, score: float) -> None:
    health_id = get_scorecard(scenario.db, scenario.workspace_id)[0]
    with scenario.db.transaction() as session:
        session.add(HealthSnapshot(
            workspace_id=scenario.workspace_id, definition_id=health_id,
            customer_id=scenario.customers[user], ts=ts(when),
            occurred_at=datetime.fromtimestamp(ts(when), UTC), score=score, state=state,
            contributions={},
        ))  # fmt: skip


def _transition(scenario: Loaded, user: str, when: str, source: str | None, target: str) -> None:
    with scenario.db.transaction() as session:
        session.add(StageTransition(
            workspace_id=scenario.workspace_id, definition_id=scenario.definition_id,
            customer_id=scenario.customers[user], ts=ts(when),
            occurred_at=datetime.fromtimestamp(ts(when), UTC), from_stage=source,
            to_stage=target, kind="test", rule="test", announced=True,
        ))  # fmt: skip


def _ingest(scenario: Loaded, *messages: dict[str, Any]) -> None:
    result = ingest(scenario.db, scenario.workspace_id, list(messages))
    assert result.stored == len(messages), result.rejected


# Each change, in turn, on the scenario (each on top of the ones before).
CHANGES: list[tuple[str, Callable[[Loaded], None]]] = [
    (
        "an order",
        lambda s: _ingest(s, event("d", "2024-03-02", "Order Completed", "d2", revenue=25)),
    ),
    ("a stage transition", lambda s: _transition(s, "d", "2024-03-02", "lead", "paying")),
    ("a health snapshot", lambda s: _snapshot(s, "c", "2024-03-12", "unhappy", 20.0)),
    (
        "marketing spend",
        lambda s: import_spend(s.db, s.workspace_id, "channel,month,amount\nsearch,2024-01,200\n"),
    ),
    (
        "a survey answer",
        lambda s: _ingest(s, event("a", "2024-03-03", "NPS Survey Answered", "a9", score=9)),
    ),
    (
        "a prediction",
        lambda s: _ingest(
            s, event("d", "2024-03-12", "Prediction Scored", "d3", p_alive=0.05, clv_12m=1)
        ),
    ),
    (
        "an erasure",
        lambda s: erase_customer(s.db, s.workspace_id, s.customers["b"], who=Actor("test")),
    ),
    ("a new stage model", lambda s: apply_stage_model(s.db, s.workspace_id, NO_CHURN_MODEL)),
]
DEFAULTS: dict[str, Any] = {}  # the page's default view: the whole log


@pytest.mark.parametrize("params", [PERIOD, DEFAULTS], ids=["period", "defaults"])
def test_whenever_a_report_computed_afresh_differs_its_version_differs(
    scenario: Loaded, params: dict[str, Any]
) -> None:
    """The stale-forever bug is a report whose figures move while its version does not: for
    each change and each report, figures changed => version changed. Every change moves some
    report (else the check proves nothing), and a change a report does not read leaves its
    version alone where its figures stay (no needless re-reading)."""
    db, workspace_id = scenario.db, scenario.workspace_id
    get_scorecard(db, workspace_id)  # the default scorecard, installed before (a definition)

    def state() -> dict[str, tuple[Any, str]]:
        found = {}
        for name, spec in REPORTS.items():
            query = parse_query(spec.query, params)
            version = canonical(report_version(db, workspace_id, name, query))
            found[name] = (run_report(db, workspace_id, name, params), version)
        return found

    before = state()
    kept_versions: dict[str, set[str]] = {}
    for change, apply in CHANGES:
        apply(scenario)
        after = state()
        moved = [n for n in REPORTS if after[n][0] != before[n][0]]
        assert moved, f"{change} moved no report: the check proves nothing"
        for name in moved:
            assert after[name][1] != before[name][1], f"{change}: {name} moved, version kept"
        kept_versions[change] = {n for n in REPORTS if after[n][1] == before[n][1]}
        before = after
    # what each report does not read leaves its version as it was
    assert kept_versions["a stage transition"] == {"cohorts", "rfm", "acquisition"}
    assert kept_versions["a health snapshot"] == set(REPORTS) - {"churn_retention"}
    assert kept_versions["marketing spend"] == set(REPORTS) - {"acquisition"}


def test_a_saved_segment_filter_follows_its_members(scenario: Loaded) -> None:
    """A report filtered on a saved segment is outdated when the members change, even by
    a change the report itself does not read (here a health state, by the live loop)."""
    db, workspace_id = scenario.db, scenario.workspace_id
    at_risk = SegmentCreate(name="at risk", conditions=[Condition(attr="health", value="at_risk")])
    create_segment(db, workspace_id, at_risk, "test")
    params = {**PERIOD, "saved_segment": "at risk"}
    query = parse_query(REPORTS["rfm"].query, params)
    empty = kept_report(db, workspace_id, "rfm", params)
    assert isinstance(empty.report, RfmReport) and _customers(empty.report) == 0
    version = canonical(report_version(db, workspace_id, "rfm", query))
    with db.transaction() as session:  # the live loop finds a at risk
        session.execute(
            update(CustomerState)
            .where(CustomerState.customer_id == scenario.customers["a"])
            .values(health_state="at_risk")
        )
    assert canonical(report_version(db, workspace_id, "rfm", query)) != version
    assert not kept_report(db, workspace_id, "rfm", params).current
    direct = run_report(db, workspace_id, "rfm", params)
    assert isinstance(direct, RfmReport) and _customers(direct) == 1  # a
    with pytest.raises(ValidationError) as caught:
        kept_report(db, workspace_id, "rfm", {**PERIOD, "saved_segment": "nobody"})
    assert caught.value.errors[0].loc == ("saved_segment",)


def _customers(report: RfmReport) -> int:
    return sum(s.customers for s in report.segments)


def test_a_bad_stage_is_refused_before_anything_is_read_or_stored(scenario: Loaded) -> None:
    db, workspace_id = scenario.db, scenario.workspace_id
    with pytest.raises(ValidationError) as caught:
        kept_report(db, workspace_id, "attribution", {"from_stage": "vip"})
    assert caught.value.errors[0].loc == ("from_stage",)
    with db.session() as session:
        assert session.query(OverviewReading).count() == 0


def test_long_parameters_are_kept_under_their_hash(scenario: Loaded) -> None:
    long = {**PERIOD, "returning_event": "x" * 200}
    query = parse_query(REPORTS["cohorts"].query, long)
    key = report_params(query)
    assert list(key) == ["sha256"] and len(canonical(key)) <= MAX_KEY
    kept = kept_report(scenario.db, scenario.workspace_id, "cohorts", long)
    assert kept.report == run_report(scenario.db, scenario.workspace_id, "cohorts", long)
    # a default given explicitly is the same reading as none
    assert report_params(parse_query(RetentionQuery, {"granularity": "month"})) == {}


def test_the_live_loop_stores_each_default_view_once(
    scenario: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, workspace_id = scenario.db, scenario.workspace_id
    read = refresh_overview(db, workspace_id)
    reports = [f"report:{name}" for name in REPORTS]
    assert read[-len(reports) :] == reports
    assert refresh_overview(db, workspace_id) == []  # nothing moved: nothing read
    _snapshot(scenario, "c", "2024-03-12", "unhappy", 20.0)
    _no_waiting(monkeypatch)
    read = [k for k in refresh_overview(db, workspace_id) if k.startswith("report:")]
    assert read == ["report:churn_retention"]  # the one report that reads health
    # the page's default view, from storage without computing, in a restarted process
    monkeypatch.setattr(report_readings, "run_report", lambda *a, **k: 1 / 0)
    restarted = _same_url(db)
    try:
        for name in REPORTS:
            kept = kept_report(restarted, workspace_id, name, {})
            assert kept.current and kept.report is not None
    finally:
        restarted.dispose()


# --- over HTTP ------------------------------------------------------------------------------


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Reports computed in the background wait for the gate to open (a slow first reading);
    a first request waits 0.2 s for its reading."""
    opened = threading.Event()
    direct = report_readings.run_report

    def slow(*args: Any, **kwargs: Any) -> Any:
        assert opened.wait(60)
        return direct(*args, **kwargs)

    monkeypatch.setattr(report_readings, "run_report", slow)
    for name, kind in list(KINDS.items()):
        monkeypatch.setitem(KINDS, name, replace(kind, wait=0.2, min_interval=0.0))
    yield opened
    opened.set()


@dataclass
class Api:
    """The rfm report's URL and a read key of a workspace with one buyer, a."""

    db: Database
    workspace_id: int
    url: str
    auth: dict[str, str]


@pytest.fixture
def rfm_api(live_server: LiveServer) -> Api:
    db = live_server.db
    with db.transaction() as session:
        workspace_id = ws.create_workspace(session, "acme").id
        key = ws.issue_key(session, "read", workspace_id).key
    ingest(db, workspace_id, [event("a", "2024-01-05", "Order Completed", "a1", revenue=10)])
    url = f"{live_server.url}/api/v1/reports/rfm"
    return Api(db, workspace_id, url, {"Authorization": f"Bearer {key}"})


def test_a_first_reading_says_not_ready_until_it_lands(rfm_api: Api, gate: threading.Event) -> None:
    url, auth = rfm_api.url, rfm_api.auth
    waiting = httpx.get(url, headers=auth, timeout=30).json()
    assert waiting == {"report": "rfm", "tables": [], "ready": False, "current": False,
                       "computed_at": None}  # fmt: skip
    gate.set()
    for _ in range(80):
        answer = httpx.get(url, headers=auth, timeout=30).json()
        if answer["ready"]:
            break
        time.sleep(0.25)
    direct = run_report(rfm_api.db, rfm_api.workspace_id, "rfm", {})
    assert answer["ready"] and answer["current"]
    assert isinstance(direct, RfmReport)
    assert answer["segments"] == [s.model_dump(mode="json") for s in direct.segments]
    assert answer["tables"] == [t.model_dump(mode="json") for t in direct.tables()]
    assert datetime.fromisoformat(answer["computed_at"]) <= datetime.now(UTC)


def test_fresh_computes_now_and_a_stale_answer_says_so(rfm_api: Api, gate: threading.Event) -> None:
    url, auth = rfm_api.url, rfm_api.auth
    gate.set()
    first = httpx.get(url, headers=auth, params={"fresh": "true"}, timeout=60).json()
    assert first["ready"] and first["current"] and _total(first) == 1
    gate.clear()  # from here, a background refresh hangs until the gate opens
    order = event("b", "2024-01-06", "Order Completed", "b1", revenue=20)
    ingest(rfm_api.db, rfm_api.workspace_id, [order])
    stale = httpx.get(url, headers=auth, timeout=30).json()
    assert stale["ready"] and not stale["current"] and _total(stale) == 1
    assert stale["computed_at"] == first["computed_at"]
    gate.set()
    now = httpx.get(url, headers=auth, params={"fresh": "true"}, timeout=60).json()
    assert now["current"] and _total(now) == 2  # a and b
    assert now["computed_at"] > first["computed_at"]
    readings_of(rfm_api.db).settle()


def _total(answer: dict[str, Any]) -> int:
    return sum(s["customers"] for s in answer["segments"])
