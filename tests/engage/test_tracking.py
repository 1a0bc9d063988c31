"""Email opens and clicks: a pixel and signed redirects, read from a real email, followed over
real HTTP, landing in the event log on the email channel."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from clm.engage import repository as repo
from clm.engage.delivery import outbox
from clm.engage.delivery.deliver import deliver_due
from clm.engage.schemas import Content, EmailProvider, Policy, SendRequest
from clm.store.models import EngageMessage, Event
from tests.conftest import LiveServer, make_tenant
from tests.engage.conftest import SmtpSink, add_customer

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_open_pixel_and_click_redirect_write_events(
    live_server: LiveServer, smtp_sink: SmtpSink
) -> None:
    db = live_server.db
    ws = make_tenant(db).id
    ada = add_customer(db, ws, "ada")
    with db.transaction() as session:
        repo.set_provider(session, ws, EmailProvider(host=smtp_sink.host, port=smtp_sink.port))
        repo.set_policy(session, ws, Policy(quiet_hours=None, caps=[]))
        repo.set_consent(session, ws, ada, "email", "marketing", True)
    content = Content(
        subject="New arrivals",
        text="See https://shop.test/new",
        html='<html><body><a href="https://shop.test/new?a=1&b=2">new</a>'
        '<a href="{{ links.unsubscribe }}">unsubscribe</a></body></html>',
    )
    outbox.send(
        db,
        ws,
        [SendRequest(customer_id=ada, channel="email", content=content, idempotency_key="k1",
                     source="playbook:welcome")],
        now=NOW,
    )  # fmt: skip
    assert deliver_due(db, now=NOW).sent == 1
    with db.session() as session:
        message_id = session.scalar(select(EngageMessage.id))
    body = smtp_sink.messages[0].get_body(("html",)).get_content()  # type: ignore[union-attr]
    links = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', body)]
    [pixel] = re.findall(r'<img src="([^"]+)"', body)
    assert links[0].startswith(f"http://clm.test/public/e/c/{ws}.{message_id}.")
    assert "/public/unsubscribe" in links[1]  # the unsubscribe link is not tracked
    assert pixel.startswith(f"http://clm.test/public/e/o/{ws}.{message_id}.")
    assert body.index(pixel) < body.index("</body>")

    def local(url: str) -> str:
        return url.replace("http://clm.test", live_server.url)

    with httpx.Client() as http:
        for _ in range(2):  # a second open is the same fact
            opened = http.get(local(pixel))
            assert opened.status_code == 200
            assert opened.headers["content-type"] == "image/gif"
        clicked = http.get(local(links[0]))
        assert clicked.status_code == 302
        assert clicked.headers["location"] == "https://shop.test/new?a=1&b=2"
        # The signature covers the URL: no open redirect to elsewhere.
        forged = http.get(local(links[0]).split("?u=")[0] + "?u=https%3A%2F%2Fevil.test%2F")
        assert forged.status_code == 401 and "evil" not in forged.headers.get("location", "")
        bad_pixel = http.get(local(pixel).replace(f"{ws}.{message_id}.", f"{ws}.999."))
        assert bad_pixel.status_code == 200  # an image either way, but nothing recorded
    with db.session() as session:
        rows = session.execute(
            select(Event.name, Event.channel, Event.properties)
            .where(Event.name.in_(("Email Opened", "Email Clicked")))
            .order_by(Event.id)
        ).all()
    assert [(r.name, r.channel) for r in rows] == [
        ("Email Opened", "email"),
        ("Email Clicked", "email"),
    ]
    assert rows[0].properties == {
        "message_id": message_id,
        "category": "other",
        "source": "playbook:welcome",
    }
    assert rows[1].properties["url"] == "https://shop.test/new?a=1&b=2"
