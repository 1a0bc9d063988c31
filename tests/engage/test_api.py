"""The engagement API and public pages on a real server: keys, playbooks, surveys, unsubscribe."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select

from clm.engage.delivery.deliver import deliver_due
from clm.store.models import EngageSuppression, EngageTask, Event
from tests.conftest import LiveServer, make_tenant
from tests.engage.conftest import SmtpSink, add_customer


def test_survey_email_one_click_and_unsubscribe_over_http(
    live_server: LiveServer, smtp_sink: SmtpSink
) -> None:
    db = live_server.db
    tenant = make_tenant(db)
    other = make_tenant(db, "other")
    ada = add_customer(db, tenant.id, "ada", traits={"first_name": "Ada"})
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url) as http:
        assert http.get("/api/v1/engage/policy").status_code == 401
        put = http.put("/api/v1/engage/channels/email", headers=auth,
                       json={"host": smtp_sink.host, "port": smtp_sink.port,
                             "password": "hunter2"})  # fmt: skip
        assert put.status_code == 200 and "hunter2" not in put.text
        assert http.put("/api/v1/engage/policy", headers=auth,
                        json={"quiet_hours": None}).status_code == 200  # fmt: skip
        assert http.put("/api/v1/engage/consents", headers=auth, json={
            "customer_id": ada, "channel": "email", "purpose": "marketing", "granted": True,
        }).status_code == 200  # fmt: skip
        assert http.post("/api/v1/engage/surveys", headers=auth,
                         json={"key": "nps", "type": "nps"}).status_code == 201  # fmt: skip
        sent = http.post("/api/v1/engage/surveys/nps/send", headers=auth,
                         json={"customer_ids": [ada]})  # fmt: skip
        assert sent.status_code == 202 and sent.json()[0]["status"] == "pending"
        # Another workspace's key sees none of it.
        other_auth = {"Authorization": f"Bearer {other.secret_key}"}
        assert http.get("/api/v1/engage/messages", headers=other_auth).json() == []
        assert deliver_due(db).sent == 1
        text = smtp_sink.messages[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
        link = re.search(r"^10: (\S+?)\r?$", text, re.M).group(1)  # type: ignore[union-attr]
        local = link.replace("http://clm.test", live_server.url)
        page = http.get(local)  # the click shows the answer to confirm
        assert page.status_code == 200 and "Send my answer" in page.text
        token = parse_qs(urlsplit(local).query)["token"][0]
        form = {"token": token, "score": "10"}
        done = http.post("/public/surveys/answer-form", data=form)
        assert done.status_code == 200 and "Thank you" in done.text
        again = http.post("/public/surveys/answer-form", data=form)
        assert again.status_code == 409 and "already used" in again.text
        tampered = http.get(local.replace("token=", "token=x"))
        assert tampered.status_code == 401
        unsub = smtp_sink.messages[0]["List-Unsubscribe"].strip("<>")
        done = http.post(unsub.replace("http://clm.test", live_server.url))
        assert done.status_code == 200 and "Unsubscribed" in done.text
        messages = http.get("/api/v1/engage/messages", headers=auth).json()
        assert [m["status"] for m in messages] == ["sent"]
    with db.session() as session:
        assert session.scalars(select(EngageSuppression.address)).all() == ["ada@example.com"]
        names = set(session.scalars(select(Event.name).where(Event.name.is_not(None))))
    assert {"survey_answered", "Email Sent", "Unsubscribed"} <= names


def test_playbook_api(live_server: LiveServer) -> None:
    tenant = make_tenant(live_server.db)
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    book = {"name": "hello", "trigger": {"type": "stage_changed", "to": "conversion"},
            "steps": [{"id": "a", "type": "send", "content": {"text": "hi"}}]}  # fmt: skip
    with httpx.Client(base_url=live_server.url, headers=auth) as http:
        bad = http.post("/api/v1/engage/playbooks/validate", json={**book, "steps": []})
        assert bad.status_code == 422 and bad.json()["errors"]
        assert http.post("/api/v1/engage/playbooks/validate", json=book).json()["valid"]
        assert http.post("/api/v1/engage/playbooks", json=book).json()["version"] == 1
        assert [p["name"] for p in http.get("/api/v1/engage/playbooks").json()] == ["hello"]
        assert http.post("/api/v1/engage/playbooks/hello/pause").json()["status"] == "paused"
        assert http.post("/api/v1/engage/tick").status_code == 200
        report = http.get("/api/v1/engage/playbooks/hello/report").json()
        assert report["treatment"]["enrolled"] == 0
        assert http.get("/api/v1/engage/playbooks/nope/report").status_code == 404


def test_link_scanners_fetching_every_link_change_nothing(
    live_server: LiveServer, smtp_sink: SmtpSink
) -> None:
    """Issue 16 item 10: a mail security gateway GETs every link of a message. It used to
    unsubscribe the person and answer "0" to the NPS survey (filing a detractor follow-up
    task), after which the person's own click got "already used"."""
    db = live_server.db
    tenant = make_tenant(db)
    ada = add_customer(db, tenant.id, "ada")
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url) as http:
        http.put("/api/v1/engage/channels/email", headers=auth,
                 json={"host": smtp_sink.host, "port": smtp_sink.port})  # fmt: skip
        http.put("/api/v1/engage/policy", headers=auth, json={"quiet_hours": None})
        consent = {"customer_id": ada, "channel": "email", "purpose": "marketing", "granted": True}
        http.put("/api/v1/engage/consents", headers=auth, json=consent)
        http.post("/api/v1/engage/surveys", headers=auth, json={"key": "nps", "type": "nps"})
        http.post("/api/v1/engage/surveys/nps/send", headers=auth, json={"customer_ids": [ada]})
        assert deliver_due(db).sent == 1
        mail = smtp_sink.messages[0]
        text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        links = [u.replace("http://clm.test", live_server.url)
                 for u in re.findall(r"(http://clm\.test/public/\S+)", text)]  # fmt: skip
        unsubscribe = str(mail["List-Unsubscribe"]).strip("<>")
        links.append(unsubscribe.replace("http://clm.test", live_server.url))
        assert len(links) == 13  # 0..10, the plain-text unsubscribe line, the header
        for _ in range(2):  # the scanner, twice
            for link in links:
                assert http.get(link).status_code == 200, link
        with db.session() as session:
            assert session.scalars(select(EngageSuppression)).all() == []
            names = set(session.scalars(select(Event.name).where(Event.name.is_not(None))))
            tasks = session.scalars(select(EngageTask)).all()
        assert not {"survey_answered", "Unsubscribed"} & names and tasks == []
        # The person then answers 9 and unsubscribes: both work.
        token = parse_qs(urlsplit(links[9]).query)["token"][0]
        answered = http.post("/public/surveys/answer-form", data={"token": token, "score": "9"})
        assert answered.status_code == 200 and "(9)" in answered.text
        # RFC 8058: the mail client's one-click POST to the List-Unsubscribe URL.
        one_click = http.post(links[-1], data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 200 and "Unsubscribed" in one_click.text
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with db.session() as session:
        assert session.scalars(select(EngageSuppression.address)).all() == ["ada@example.com"]
