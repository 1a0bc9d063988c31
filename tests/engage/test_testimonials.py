"""Testimonials: signed single-use form links, consent, review, feed, escaped snippet; the
advocacy ask's ``links.testimonial`` and ``links.referral``."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

from clm.engage import repository as repo
from clm.engage.delivery import outbox
from clm.engage.referrals import service as referrals
from clm.engage.referrals import testimonials
from clm.engage.referrals.schemas import ReferralProgram
from clm.engage.referrals.testimonials import TestimonialSubmit as Submit
from clm.engage.schemas import Content, Policy, SendRequest
from clm.errors import Conflict, ValidationError
from clm.store.engine import Database
from clm.store.models import EngageMessage, EngageReferralCode
from tests.conftest import make_tenant
from tests.engage.conftest import add_customer

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def token_of(link: str) -> str:
    return parse_qs(urlparse(link).query)["token"][0]


def test_submit_review_feed_and_escaped_snippet(db: Database) -> None:
    ws = make_tenant(db).id
    ada = add_customer(db, ws, "ada")
    with db.transaction() as session:
        [link] = testimonials.form_links(session, ws, [ada], NOW).values()
    assert link.startswith("http://clm.test/public/testimonials/form?token=")
    attack = Submit(
        token=token_of(link),
        text='<script>alert("x")</script> Great & fast',
        rating=5,
        display_name="Ada <b>L</b>",
        brand="cdnow",
        consent=True,
    )
    saved = testimonials.submit(db, attack, NOW)
    assert saved.status == "pending" and saved.customer_id == ada
    with pytest.raises(Conflict):  # single use
        testimonials.submit(db, attack, NOW)
    assert testimonials.feed(db, ws) == []  # pending is not published
    testimonials.review(db, ws, saved.id, "approved", NOW)
    assert [i.brand for i in testimonials.feed(db, ws, brand="cdnow")] == ["cdnow"]
    assert testimonials.feed(db, ws, brand="other") == []
    html = testimonials.snippet(testimonials.feed(db, ws))
    assert "<script>" not in html and "<b>" not in html
    assert html == (
        '<div class="clm-testimonials"><blockquote class="clm-testimonial"><p>'
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; Great &amp; fast</p>"
        "<footer>Ada &lt;b&gt;L&lt;/b&gt; ★★★★★</footer></blockquote></div>"
    )


def test_no_consent_cannot_be_approved(db: Database) -> None:
    ws = make_tenant(db).id
    ada = add_customer(db, ws, "ada")
    with db.transaction() as session:
        [link] = testimonials.form_links(session, ws, [ada], NOW).values()
    saved = testimonials.submit(db, Submit(token=token_of(link), text="ok"), NOW)
    with pytest.raises(ValidationError):
        testimonials.review(db, ws, saved.id, "approved", NOW)
    assert testimonials.review(db, ws, saved.id, "rejected", NOW).status == "rejected"


def test_advocacy_ask_fills_testimonial_and_referral_links(db: Database) -> None:
    ws = make_tenant(db).id
    referrals.set_program(db, ws, ReferralProgram())
    ada = add_customer(db, ws, "ada")
    with db.transaction() as session:
        repo.set_policy(session, ws, Policy(quiet_hours=None, caps=[]))
        repo.set_consent(session, ws, ada, "email", "marketing", True)
    asks = {
        "t": "A few words? {{ links.testimonial }}",
        "r": "Share: {{ links.referral }}",
    }
    outbox.send(
        db,
        ws,
        [
            SendRequest(
                customer_id=ada,
                channel="email",
                category="advocacy",
                content=Content(subject="Hi", text=text),
                idempotency_key=key,
            )
            for key, text in asks.items()
        ],
        now=NOW,
    )
    with db.session() as session:
        texts = {
            m.idempotency_key: m.payload["text"].split("\n")[0]
            for m in session.scalars(select(EngageMessage))
        }
        code = session.scalar(select(EngageReferralCode.code))
    assert texts["r"] == f"Share: http://clm.test/public/r/{code}"
    form = texts["t"].removeprefix("A few words? ")
    assert form.startswith("http://clm.test/public/testimonials/form?token=")
    body = Submit(token=token_of(form), text="Lovely", consent=True)
    assert testimonials.submit(db, body, NOW).customer_id == ada
