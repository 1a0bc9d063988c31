"""fit_workspace on the event log: published estimates, stored scores, idempotency, isolation."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from clm.errors import NotFound, ValidationError
from clm.ingest import ingest
from clm.predictions import fit_workspace, latest_fit, latest_predictions
from clm.store import customers as customers_repo
from clm.store.engine import Database
from clm.store.models import Event, PredictionFit
from tests.conftest import make_tenant
from tests.predictions.conftest import import_cdnow_sample, purchase, subscription_workspace

CDNOW_BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # FHL 2005, Table 1


def _scores(db: Database, workspace_id: int) -> int:
    with db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.workspace_id == workspace_id, Event.name == "Prediction Scored")
            )
            or 0
        )


def test_cdnow_sample_gives_the_published_bg_nbd_and_stores_one_score_each(db: Database) -> None:
    tenant, _ = import_cdnow_sample(db)
    report = fit_workspace(db, tenant.id, model="bgnbd", as_of=date(1997, 9, 30))
    estimates = {p.name: p.estimate for p in report.parameters}
    for name, published in CDNOW_BG.items():
        assert estimates[name] == pytest.approx(published, rel=0.005), name
    assert all(p.lower_95 is not None and p.lower_95 < p.estimate for p in report.parameters)
    assert report.n_customers == 2357 and report.scores_written == 2357
    assert report.calibration_end == datetime(1997, 10, 1, tzinfo=UTC)
    assert _scores(db, tenant.id) == 2357

    # Sample customer 0001 bought on 1997-01-01, 01-18 and 08-02: x = 2, t_x = 213/7,
    # T = 272/7 weeks. BG/NBD P(alive) = 1 / (1 + a/(b+x-1) ((α+T)/(α+t_x))^(r+x)) (FHL eq. 13).
    r, alpha, a, b = (estimates[k] for k in ("r", "alpha", "a", "b"))
    x, tx, age = 2, 213 / 7, 272 / 7
    expected = 1 / (1 + a / (b + x - 1) * ((alpha + age) / (alpha + tx)) ** (r + x))
    with db.session() as session:
        customer = customers_repo.find_customer(session, tenant.id, "user_id", "0001")
    scores = latest_predictions(db, tenant.id, customer.id)
    assert scores.latest is not None
    assert scores.latest.p_alive == pytest.approx(expected, rel=1e-9)
    assert scores.latest.model == "bgnbd" and scores.latest.model_version == report.model_version
    assert scores.latest.timestamp == datetime(1997, 10, 1, tzinfo=UTC)
    assert scores.latest.expected_purchases_90d > 0 and scores.latest.clv_12m is not None
    with db.session() as session:
        event = session.scalar(select(Event).where(Event.message_id == scores.latest.message_id))
    assert event is not None
    assert (event.type, event.channel, event.user_id) == ("track", "system", "0001")
    assert event.context == {"library": {"name": "clm-predict"}}
    assert event.message_id == f"clm-pred-{report.fit_id}-{customer.id}"


def test_holdout_counts_same_day_purchases_once_in_the_39_weeks(db: Database) -> None:
    tenant, frame = import_cdnow_sample(db)
    report = fit_workspace(db, tenant.id, model="bgnbd", as_of=date(1998, 6, 30), holdout_weeks=39)
    estimates = {p.name: p.estimate for p in report.parameters}
    for name, published in CDNOW_BG.items():  # same calibration period: same estimates
        assert estimates[name] == pytest.approx(published, rel=0.005), name
    in_holdout = frame[(frame["date"] > "1997-09-30") & (frame["date"] <= "1998-06-30")]
    assert report.holdout is not None
    assert report.holdout.customers == 2357
    assert report.holdout.actual == in_holdout.groupby(["customer_id", "date"]).ngroups
    assert report.holdout.duration_weeks == 39.0
    buckets = report.holdout.by_frequency
    assert sum(b["customers"] for b in buckets) == 2357
    weighted = sum(b["customers"] * b["predicted"] for b in buckets)
    assert weighted == pytest.approx(report.holdout.predicted, rel=1e-9)
    # Everyone is scored as of the end of the holdout, on their whole history.
    assert report.as_of == datetime(1998, 7, 1, tzinfo=UTC)
    assert report.calibration_end == datetime(1997, 10, 1, tzinfo=UTC)


def test_a_retried_fit_writes_nothing_twice(db: Database) -> None:
    tenant = make_tenant(db)
    day = datetime(2024, 1, 1, 12, tzinfo=UTC)
    ingest(
        db,
        tenant.id,
        [
            purchase(f"u{i}", day.replace(day=1 + i % 20, month=1 + i % 6), 10.0 + i)
            for i in range(60)
        ]
        + [purchase(f"u{i}", day.replace(month=8, day=1 + i % 25), 20.0) for i in range(0, 60, 3)]
        + [purchase(f"u{i}", day.replace(month=10, day=2), 30.0, 1) for i in range(0, 60, 4)],
    )
    first = fit_workspace(db, tenant.id, model="pareto", as_of=date(2024, 12, 31))
    again = fit_workspace(db, tenant.id, model="pareto", as_of=date(2024, 12, 31))
    assert again.fit_id == first.fit_id and again.reused and not first.reused
    assert (first.scores_written, again.scores_written) == (60, 0)
    assert _scores(db, tenant.id) == 60
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(PredictionFit)) == 1
    assert latest_fit(db, tenant.id).fit_id == first.fit_id
    # New data is a new fit, with its own scores.
    ingest(db, tenant.id, [purchase("u1", day.replace(month=12, day=1), 5.0)])
    third = fit_workspace(db, tenant.id, model="pareto", as_of=date(2024, 12, 31))
    assert third.fit_id != first.fit_id and third.scores_written == 60
    assert _scores(db, tenant.id) == 120


def test_workspaces_are_isolated(db: Database) -> None:
    shop = make_tenant(db, "shop")
    other = make_tenant(db, "other")
    day = datetime(2024, 3, 1, tzinfo=UTC)
    ingest(db, shop.id, [purchase("a", day, 5.0), purchase("a", day.replace(month=5), 7.0)])
    ingest(db, other.id, [purchase("b", day, 9.0)])
    report = fit_workspace(db, shop.id, model="bgnbd", as_of=date(2024, 6, 30))
    assert report.n_customers == 1  # the other workspace's customer is not in the fit
    with pytest.raises(NotFound):
        latest_fit(db, other.id)
    with db.session() as session:
        a = customers_repo.find_customer(session, shop.id, "user_id", "a")
    with pytest.raises(NotFound):
        latest_predictions(db, other.id, a.id)
    assert _scores(db, other.id) == 0 and _scores(db, shop.id) == 1
    # One customer cannot pin four parameters: the fit says so in its diagnostics.
    assert report.diagnostics["warnings"]


def test_bad_input_is_a_clear_validation_error(db: Database) -> None:
    tenant = make_tenant(db)
    with pytest.raises(ValidationError, match="No purchases"):
        fit_workspace(db, tenant.id, as_of=date(2024, 1, 1))
    ingest(db, tenant.id, [purchase("a", datetime(2024, 3, 1, tzinfo=UTC), 5.0)])
    with pytest.raises(ValidationError, match="No purchases"):
        fit_workspace(db, tenant.id, as_of=date(2024, 2, 1))  # all after the as-of day
    with pytest.raises(ValidationError, match="model must be"):
        fit_workspace(db, tenant.id, model="lstm")
    with pytest.raises(ValidationError, match="holdout_weeks"):
        fit_workspace(db, tenant.id, holdout_weeks=0)
    with pytest.raises(ValidationError, match="No repeat purchases"):
        fit_workspace(db, tenant.id, as_of=date(2024, 3, 10))  # one purchase: nothing to learn
    with pytest.raises(ValidationError, match="calibration end"):
        fit_workspace(db, tenant.id, as_of=date(2024, 3, 10), holdout_weeks=4)


def test_subscription_workspace_fits_the_sbg_on_fh_2007(db: Database) -> None:
    tenant = subscription_workspace(db)
    report = fit_workspace(db, tenant.id, as_of=date(2007, 1, 2))  # years 0..7 observed
    assert report.model == "sbg"
    estimates = {p.name: p.estimate for p in report.parameters}
    assert estimates["alpha"] == pytest.approx(0.704, rel=0.005)  # FH 2007, "regular"
    assert estimates["beta"] == pytest.approx(1.182, rel=0.005)
    assert report.n_customers == 1000 and report.diagnostics["churned"] == 759
    with db.session() as session:
        gone = customers_repo.find_customer(session, tenant.id, "user_id", "s1")
        kept = customers_repo.find_customer(session, tenant.id, "user_id", "s1000")
    lost = latest_predictions(db, tenant.id, gone.id).latest
    active = latest_predictions(db, tenant.id, kept.id).latest
    assert lost is not None and active is not None
    assert (lost.p_alive, lost.expected_purchases_90d) == (0.0, 0.0)
    assert active.p_alive == 1.0
    # No renewal falls in the 90 days after 2007-01-02 (the next is on 2008-01-01).
    assert active.expected_purchases_90d == 0.0
    assert active.clv_12m is None  # no payments recorded: no value to put on a renewal
    with db.session() as session:
        event = session.scalar(select(Event).where(Event.message_id == active.message_id))
    assert event is not None
    alpha, beta = estimates["alpha"], estimates["beta"]
    # Survived 7 renewals: P(renew at the 8th) = (β+7)/(α+β+7) (FH 2007 eq. 8).
    assert event.properties["retention_probability"] == pytest.approx(
        (beta + 7) / (alpha + beta + 7), rel=1e-9
    )
    assert not math.isnan(event.properties["derl"])
    with pytest.raises(ValidationError, match="holdout_weeks"):
        fit_workspace(db, tenant.id, as_of=date(2007, 1, 2), holdout_weeks=10)


def test_a_one_time_buyers_p_alive_is_flagged_not_shown_bare(db: Database) -> None:
    tenant, frame = import_cdnow_sample(db)
    fit_workspace(db, tenant.id, model="bgnbd", as_of=date(1997, 9, 30))
    seen = frame[frame["date"] <= "1997-09-30"]
    days = seen.groupby("customer_id")["date"].nunique()
    once = str(days[days == 1].index[0])
    with db.session() as session:
        one_time = customers_repo.find_customer(session, tenant.id, "user_id", once)
        regular = customers_repo.find_customer(session, tenant.id, "user_id", "0001")
    scores = latest_predictions(db, tenant.id, one_time.id)
    assert scores.latest is not None
    # the model's own property: no repeat purchase, no chance to have dropped out
    assert scores.latest.p_alive == pytest.approx(1.0)
    assert scores.purchase_days == 1
    assert scores.p_alive_informative is False
    assert scores.p_alive_note is not None and "BG/NBD" in scores.p_alive_note
    bought = seen[seen["customer_id"] == once]["date"].max()
    assert scores.last_purchase_at == bought.to_pydatetime().replace(tzinfo=UTC)
    # 0001 bought on three days (1997-01-01, 01-18, 08-02): its P(alive) means something
    three = latest_predictions(db, tenant.id, regular.id)
    assert three.purchase_days == 3 and three.p_alive_informative is True
    assert three.p_alive_note is None
    assert three.last_purchase_at == datetime(1997, 8, 2, tzinfo=UTC)
    assert three.uncertainty is not None and "no interval per customer" in three.uncertainty
