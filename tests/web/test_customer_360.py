"""The customer 360 in Debian's Chromium against the real app: a seeded customer with surveys,
a referral under review, points, a coupon, a sent and a blocked message and a journey; each
panel shows the values worked out in ``seed_360``; a note is added from the page; a one-time
buyer's P(alive) is not shown bare; no console errors; screenshots at 1280 and 400 px."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from clm.config import get_settings
from clm.ingest import ingest
from clm.predictions import fit_workspace
from clm.store.engine import Database
from tests.conftest import Tenant, make_tenant
from tests.engage.conftest import SmtpSink, smtp_sink  # noqa: F401 - the fixture
from tests.web.browser import Shot, console_errors, sign_in_with_key
from tests.web.seed_360 import BLOCKED, GOOD_COMMENT, Seeded, engage_settings, seed
from tests.web.servers import serving


def _regulars() -> list[dict[str, Any]]:
    """40 other buyers since mid-2025: some every 2-6 weeks until now, some who stopped."""
    start = datetime(2025, 6, 1, tzinfo=UTC)
    events: list[dict[str, Any]] = []
    for n in range(40):
        gap, stop = 14 + 7 * (n % 5), 60 + 6 * n
        for k, day in enumerate(range(n % 7, min(stop, 270), gap)):
            events.append(
                {"type": "track", "userId": f"r{n}", "event": "Order Completed",
                 "messageId": f"r{n}-{k}", "properties": {"revenue": 20 + n % 9},
                 "timestamp": (start + timedelta(days=day)).isoformat()}
            )  # fmt: skip
    return events


@pytest.fixture
def shop(
    db: Database,
    smtp_sink: SmtpSink,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[tuple[str, Tenant, Seeded]]:
    engage_settings(monkeypatch, str(tmp_path / "data"))
    tenant = make_tenant(db, "shop")
    seeded = seed(db, tenant.id, (smtp_sink.host, smtp_sink.port))
    ingest(db, tenant.id, _regulars())  # a population for the purchase model to fit
    # Ann bought on two days, Bob on one: BG/NBD gives Bob P(alive) 100% whatever happens
    fit_workspace(db, tenant.id, model="bgnbd", as_of=date(2026, 2, 28))
    with serving(db) as url:
        yield url, tenant, seeded
    get_settings.cache_clear()


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_the_360_shows_every_panel_and_takes_a_note(
    shop: tuple[str, Tenant, Seeded],
    browser_page: Page,
    shot: Shot,
    width: int,
) -> None:
    url, tenant, seeded = shop
    page = browser_page
    page.set_viewport_size({"width": width, "height": 900})
    sign_in_with_key(page, f"{url}/customers/{seeded.ann}", tenant.secret_key)
    expect(page.locator("#customer-title")).to_contain_text("Ann Example")
    # last seen: her survey comment on 2026-02-21, not CLM's scores and messages of March
    expect(page.locator("#customer-summary")).to_contain_text("last seen 2026-02-21")
    surveys = page.locator("#customer-surveys li")
    expect(surveys).to_have_count(2)
    expect(surveys.nth(0)).to_contain_text("CSAT (support) 4 of 5")
    expect(surveys.nth(0)).to_contain_text("positive")
    expect(surveys.nth(1)).to_contain_text("NPS 3 of 10")
    expect(surveys.nth(1)).to_contain_text("negative")
    # 120 + 30 - 50 points; the ledger newest first
    expect(page.locator("#points-balance")).to_have_text("100")
    expect(page.locator("#points-ledger tbody tr")).to_have_count(3)
    expect(page.locator("#points-ledger tbody tr").first).to_contain_text("\u221250")  # minus
    expect(page.locator("#customer-coupons")).to_contain_text("ANN-10OFF")
    expect(page.locator("#customer-coupons")).to_contain_text("$10 off")
    expect(page.locator("#customer-coupons")).to_contain_text("usable")
    referrals = page.locator("#customer-referrals")
    expect(referrals).to_contain_text("ANN123")
    expect(referrals).to_contain_text(f"Referred customer {seeded.bob}")
    expect(referrals).to_contain_text("Flagged: same ip")
    messages = page.locator("#customer-messages")
    expect(messages).to_contain_text("1 sent · 1 blocked")
    expect(messages).to_contain_text(f"blocked {BLOCKED}")
    expect(messages).to_contain_text("playbook welcome, step hello")
    expect(page.locator("#customer-journeys")).to_contain_text("welcome v1: waiting at step hello")
    # health: the NPS of 3 is why she turned unhappy, said on the timeline and in the changes
    expect(page.locator("#health-trend canvas")).to_have_count(1)
    expect(page.locator("#customer-timeline")).to_contain_text("Last NPS score: 3 of 10 (\u2212")
    expect(page.locator("#health-changes")).to_contain_text("Last NPS score: 3 of 10 (\u2212")
    # Traits and an event's properties listed by name on both backends (PostgreSQL's jsonb keeps
    # no sender's key order): seed_360's traits; her CSAT answer of 2026-02-21 as seed_360
    # writes it (survey id, type, score, comment; response id and revision are not shown).
    expect(page.locator("#customer-traits dt")).to_have_text(["email", "name", "phone"])
    answered = page.locator("#customer-timeline tr", has_text=GOOD_COMMENT)
    expect(answered.locator("span.muted").last).to_have_text(
        f"comment {GOOD_COMMENT}, score 4, survey id support, survey type csat"
    )
    # two purchase days: a P(alive) worth showing
    expect(page.locator("#p-alive")).to_contain_text("%")
    page.fill("#note-form textarea", f"Called at {width} px: will try the new courier")
    page.select_option("#note-form select[name=rating]", "4")
    page.click("#note-form button")
    expect(page.locator("#notes li").first).to_contain_text("will try the new courier")
    expect(page.locator("#notes li").first).to_contain_text("4/5")
    shot("customer-360-every-panel")
    # Bob bought once: BG/NBD cannot tell, and the page says so instead of 100%
    page.goto(f"{url}/customers/{seeded.bob}")
    expect(page.locator("#p-alive")).to_have_text("not informative")
    expect(page.locator("#p-alive-note")).to_contain_text("BG/NBD")
    expect(page.locator("#customer-referrals")).to_contain_text(
        f"Referred by customer {seeded.ann}"
    )
    shot("customer-360-one-time-buyer")
    assert console_errors(page) == []
