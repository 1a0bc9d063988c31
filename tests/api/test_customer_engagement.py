"""GET /api/v1/customers/{id}/engagement and the 360's header over real HTTP: the ladder
(unauthenticated, wrong tenant, not found), then each panel's values against the seed worked
out by hand, and "last seen" as the customer's own newest event, not CLM's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from vaderSentiment.vaderSentiment import (  # type: ignore[import-untyped]
    SentimentIntensityAnalyzer,
)

from clm.config import get_settings
from clm.engage.notes import NoteCreate, add_note
from tests.conftest import LiveServer, Tenant, make_tenant
from tests.engage.conftest import SmtpSink, smtp_sink  # noqa: F401 - the fixture
from tests.web.seed_360 import BAD_COMMENT, BLOCKED, GOOD_COMMENT, Seeded, engage_settings, seed


@pytest.fixture
def seeded(
    live_server: LiveServer,
    tenant: Tenant,
    smtp_sink: SmtpSink,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Seeded]:
    engage_settings(monkeypatch, str(tmp_path / "data"))
    yield seed(live_server.db, tenant.id, (smtp_sink.host, smtp_sink.port))
    get_settings.cache_clear()


def _get(live_server: LiveServer, key: str, path: str) -> httpx.Response:
    return httpx.get(
        f"{live_server.url}/api/v1{path}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_engagement_walks_the_ladder_and_shows_each_panel(
    live_server: LiveServer, tenant: Tenant, seeded: Seeded
) -> None:
    path = f"/api/v1/customers/{seeded.ann}/engagement"
    assert httpx.get(live_server.url + path).status_code == 401
    other = make_tenant(live_server.db, "other")
    assert _get(live_server, other.secret_key, path[7:]).status_code == 404
    assert _get(live_server, tenant.secret_key, "/customers/999999/engagement").status_code == 404
    answer = _get(live_server, tenant.secret_key, path[7:])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    vader = SentimentIntensityAnalyzer()
    # surveys, newest first; the CSAT response's second revision carries its comment
    surveys = body["surveys"]
    assert [(s["survey_type"], s["score"], s["comment"]) for s in surveys] == [
        ("csat", 4, GOOD_COMMENT),
        ("nps", 3, BAD_COMMENT),
    ]
    good = vader.polarity_scores(GOOD_COMMENT)["compound"]
    bad = vader.polarity_scores(BAD_COMMENT)["compound"]
    assert good > 0.05 and bad < -0.05  # the seed's comments are what they look like
    assert surveys[0]["sentiment"] == pytest.approx(good, abs=1e-4)
    assert surveys[1]["sentiment"] == pytest.approx(bad, abs=1e-4)
    assert [s["sentiment_label"] for s in surveys] == ["positive", "negative"]
    # referrals: Ann's code, her referral of Bob waiting for review with the flagged check
    assert body["referral_code"] == "ANN123"
    [given] = body["referrals_given"]
    assert (given["referee_id"], given["status"]) == (seeded.bob, "review")
    assert [c["check"] for c in given["checks"] if c["flagged"]] == ["same_ip"]
    assert body["referred_by"] is None
    # points: 120 + 30 - 50
    assert body["points_balance"] == 100
    assert [(e["amount"], e["memo"]) for e in body["points"]] == [
        (-50, "gift card"),
        (30, "review written"),
        (120, "first order"),
    ]
    [coupon] = body["coupons"]
    assert (coupon["code"], coupon["value"], coupon["status"]) == ("ANN-10OFF", 10.0, "usable")
    # messages: the SMS blocked with its reason, the e-mail delivered; both from the playbook
    assert (body["messages_sent"], body["messages_blocked"]) == (1, 1)
    by_channel = {m["channel"]: m for m in body["messages"]}
    assert by_channel["email"]["status"] == "sent"
    assert (by_channel["sms"]["status"], by_channel["sms"]["reason"]) == ("blocked", BLOCKED)
    assert {m["playbook"] for m in body["messages"]} == {"welcome"}
    assert {m["step"] for m in body["messages"]} == {"hello"}
    [journey] = body["journeys"]
    assert (journey["playbook"], journey["state"], journey["current_step"]) == (
        "welcome",
        "waiting",
        "hello",
    )
    # Bob sees the same referral from the other side
    bob = _get(live_server, tenant.secret_key, f"/customers/{seeded.bob}/engagement").json()
    assert bob["referred_by"]["referrer_id"] == seeded.ann
    assert bob["referrals_given"] == [] and bob["points_balance"] == 0


def test_last_seen_is_the_customers_own_newest_event(
    live_server: LiveServer, tenant: Tenant, seeded: Seeded
) -> None:
    # CLM wrote stage and health changes, scores, "Email Sent", "Message Blocked"; staff add
    # a note today. None of it is Ann being seen.
    add_note(live_server.db, tenant.id, seeded.ann, NoteCreate(text="Called her", author="me"))
    detail = _get(live_server, tenant.secret_key, f"/customers/{seeded.ann}").json()
    assert detail["first_seen_at"].startswith("2026-01-05T10:00:00")
    assert detail["last_seen_at"].startswith("2026-02-21T10:00:00")
    timeline = _get(live_server, tenant.secret_key, f"/customers/{seeded.ann}/timeline").json()
    assert detail["event_count"] == len(timeline)  # every event, CLM's included
    assert any(e["channel"] == "system" for e in timeline)


def test_the_lifecycle_health_of_the_seed_is_explained(
    live_server: LiveServer, tenant: Tenant, seeded: Seeded
) -> None:
    body = _get(live_server, tenant.secret_key, f"/customers/{seeded.ann}/lifecycle").json()
    health = body["health"]
    assert health["sentiment_known"] is True  # she answered surveys
    # NPS 3 of 10 earns 30% of its weight: the default card's biggest sentiment factor
    nps = next(f for f in health["factors"] if f["factor"] == "nps")
    assert nps["value"] == 3
    assert nps["points"] == pytest.approx(0.3 * nps["weight"], abs=0.01)
    assert health["score"] == pytest.approx(sum(f["points"] for f in health["factors"]), abs=0.1)
    assert body["health_history"], "run_health stored her history"
