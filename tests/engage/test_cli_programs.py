"""``clm referral``, ``clm coupon``, ``clm points``, ``clm testimonial`` against a real database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clm.cli import app
from clm.engage.referrals import testimonials
from clm.engage.referrals.testimonials import TestimonialSubmit as Submit
from clm.store.engine import Database
from tests.conftest import make_tenant
from tests.engage.conftest import add_customer
from tests.engage.test_referrals import T0, order, referred
from tests.engage.test_testimonials import token_of


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """SQLite only: the commands are thin shells over services tested on every engine (and a
    command's own engine left open would warn on PostgreSQL)."""
    database = Database.open(f"sqlite:///{tmp_path / 'cli.sqlite'}")
    yield database
    database.dispose()


def cli(db: Database, *args: str) -> tuple[int, str]:
    url = db.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, [*args, "-w", "shop", "--database-url", url])
    return result.exit_code, result.output


def said(db: Database, *args: str) -> tuple[int, str]:
    """What a person reads, with rich's line wrapping undone."""
    code, out = cli(db, *args)
    return code, " ".join(out.split())


def as_json(db: Database, *args: str) -> Any:
    code, out = cli(db, *args, "--format", "json")
    assert code == 0, out
    return json.loads(out)


def test_referral_program_codes_review_and_points(db: Database, tmp_path: Path) -> None:
    ws = make_tenant(db).id
    program = tmp_path / "referral.yaml"
    program.write_text("landing_url: https://shop.test/\nreferrer_points: 300\nmin_amount: 50\n")
    code, out = said(db, "referral", "create", str(program))
    assert code == 0, out
    assert "300 points to the referrer, 500 to the referee, after 30 days" in out
    ada = add_customer(db, ws, "ada", email_address="ada@gmail.com")
    [issued] = as_json(db, "referral", "code", str(ada))
    assert issued["customer_id"] == ada
    assert issued["link"] == f"http://clm.test/public/r/{issued['code']}"
    assert as_json(db, "referral", "code", str(ada)) == [issued]  # issued once
    # bob's address is a gmail alias of ada's: flagged for review.
    referred(db, ws, issued["code"], "bob", email="ada+b@gmail.com")
    report = as_json(db, "referral", "process")
    assert (report["attributed"], report["review"], report["qualified"]) == (1, 1, 0)
    [flagged] = as_json(db, "referral", "list", "--status", "review")
    assert [c["check"] for c in flagged["checks"] if c["flagged"]] == ["email_alias"]
    code, out = said(db, "referral", "list", "--status", "review")
    assert code == 0 and "email_alias" in out
    code, out = said(db, "referral", "approve", str(flagged["id"]), "--note", "siblings")
    assert code == 0 and f"Referral {flagged['id']} is now qualified." in out
    code, out = said(db, "referral", "approve", str(flagged["id"]))
    assert code == 1 and "not waiting for review" in out
    # The order was in 2024: the refund window is long over, so this pass rewards.
    assert as_json(db, "referral", "process")["rewarded"] == 1
    code, out = said(db, "referral", "explain", str(flagged["id"]))
    assert code == 0 and "[ok] review: approved by a reviewer: siblings" in out
    shown = as_json(db, "referral", "show")
    assert shown["report"] == {"codes": 1, "points_rewarded": 800, "rewarded": 1}
    balance = as_json(db, "points", "balance", str(ada))
    assert balance["balance"] == 300
    assert [(e["kind"], e["amount"]) for e in balance["entries"]] == [("reward", 300)]
    code, out = said(db, "points", "balance", str(ada))
    assert code == 0 and "300 points" in out


def test_points_rules_earn_from_new_orders(db: Database, tmp_path: Path) -> None:
    ws = make_tenant(db).id
    ann_id = add_customer(db, ws, "ann")
    order(db, ws, "ann", "before", 99.0, T0)  # before the rules: earns nothing
    rules = tmp_path / "points.yaml"
    rules.write_text(
        "rules:\n"
        "  - {event: Order Completed, points_per_unit: 2, expires_days: 30}\n"
        "  - {event: Order Completed, where: {coupon: VIP}, bonus: 50}\n"
    )
    assert as_json(db, "points", "rules", str(rules))["rules"][1]["bonus"] == 50
    order(db, ws, "ann", "o1", 10.6, T0 + timedelta(days=1))  # 2 x 10.6 -> 21
    order(db, ws, "ann", "o2", 5.0, T0 + timedelta(days=2), coupon="VIP")  # 10 + 50
    tick = as_json(db, "playbook", "tick")
    assert (tick["points_earned"], tick["points_expired"]) == (81, 81)  # 2024 lots lapsed
    assert as_json(db, "playbook", "tick")["points_earned"] == 0  # each event earns once
    ann = as_json(db, "points", "balance", str(ann_id))
    assert ann["balance"] == 0
    assert sorted(e["amount"] for e in ann["entries"]) == [-50, -21, -10, 10, 21, 50]


def test_coupons_issue_validate_redeem(db: Database) -> None:
    make_tenant(db)
    code, out = said(db, "coupon", "issue", "10", "--code", "save10", "--min-order", "50")
    assert code == 0 and "SAVE10" in out
    code, out = said(db, "coupon", "validate", "SAVE10", "--total", "40")
    assert code == 1 and "order below the minimum of 50.00" in out
    check = as_json(db, "coupon", "validate", "save10", "--total", "60")
    assert (check["valid"], check["discount"]) == (True, 10.0)
    assert as_json(db, "coupon", "redeem", "SAVE10", "--total", "60", "--order", "o1")["valid"]
    code, out = said(db, "coupon", "redeem", "SAVE10", "--total", "60", "--order", "o2")
    assert code == 1 and "already used" in out
    [listed] = as_json(db, "coupon", "list")
    assert (listed["code"], listed["redemptions"]) == ("SAVE10", 1)


def test_testimonials_review_queue_and_feed(db: Database) -> None:
    ws = make_tenant(db).id
    ada, bob = add_customer(db, ws, "ada"), add_customer(db, ws, "bob")
    with db.transaction() as session:
        links = testimonials.form_links(session, ws, [ada, bob], T0)
    for who, text in ((ada, "Great & fast"), (bob, "Meh")):
        testimonials.submit(
            db,
            Submit(token=token_of(links[who]), text=text, display_name=f"#{who}",
                              consent=True, rating=5),
            T0,
        )  # fmt: skip
    pending = as_json(db, "testimonial", "list", "--status", "pending")
    assert [t["text"] for t in pending] == ["Great & fast", "Meh"]
    code, out = said(db, "testimonial", "approve", str(pending[0]["id"]))
    assert code == 0 and "approved" in out
    code, out = said(db, "testimonial", "reject", str(pending[1]["id"]), "--note", "dull")
    assert code == 0 and "rejected" in out
    feed = as_json(db, "testimonial", "feed")
    assert [i["text"] for i in feed["items"]] == ["Great & fast"]
    assert feed["url"].startswith("http://clm.test/public/testimonials/feed?token=")
    code, out = said(db, "testimonial", "feed", "--html")
    assert code == 0 and "Great &amp; fast" in out
