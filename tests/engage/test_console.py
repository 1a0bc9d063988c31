"""The engagement console's API on a real server over SQLite and PostgreSQL: playbooks edited
as YAML (line-numbered problems as you type, a new version on save), journeys in flight,
survey results checked against NPS and CSAT worked by hand, the referral funnel, tasks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import yaml
from sqlalchemy import select

from clm.engage import repository as repo
from clm.engage.playbooks import service as pb
from clm.engage.playbooks.schedule import run_due
from clm.engage.referrals import service as referrals
from clm.engage.schemas import Policy
from clm.engage.surveys import answers as survey_answers
from clm.engage.surveys import service as surveys
from clm.engage.surveys.schemas import Answer, SurveyDefinition
from clm.ingest import ingest
from clm.store.engine import Database
from clm.store.models import EngageTask
from tests.conftest import LiveServer, make_tenant
from tests.engage.conftest import add_customer
from tests.engage.test_referrals import PROGRAM, T0, referred

BROKEN = """\
name: check-in
description: A call for customers who stopped buying
trigger:
  type: stage_changed
  to: at_risk
steps:
  - id: ask
    type: send
    content:
      subject: How are we doing?
      text: Hi {{ first_name }}
  - id: pause
    type: wait
    dayz: 3
  - id: call
    type: task
    title: Call them
"""


def test_a_playbook_is_checked_as_typed_saved_as_yaml_and_read_back(
    live_server: LiveServer,
) -> None:
    tenant = make_tenant(live_server.db)
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url, headers=auth) as http:
        # A misspelt key on line 14: an ordinary answer naming the line, not an error status.
        check = http.post("/api/v1/engage/playbooks/check", json={"yaml": BROKEN})
        assert check.status_code == 200
        assert check.json()["valid"] is False
        assert [e["message"] for e in check.json()["errors"]] == [
            "line 14: unknown key 'dayz'; did you mean 'days'?"
        ]
        # A step pointing nowhere is reported at that step's line, not line 1.
        nowhere = BROKEN.replace("dayz: 3", "days: 3\n    on_timeout: later")
        messages = [e["message"] for e in http.post(
            "/api/v1/engage/playbooks/check", json={"yaml": nowhere}).json()["errors"]]  # fmt: skip
        assert messages == ["line 12: step 'pause' points at unknown step 'later'"]
        # Bad YAML and a bad template: each with its line.
        bad_yaml = http.post("/api/v1/engage/playbooks/check", json={"yaml": "name: [x\n"})
        assert bad_yaml.json()["errors"][0]["message"].startswith("line 2:")
        template = BROKEN.replace("dayz", "days").replace("{{ first_name }}", "{{ first_name")
        [problem] = http.post("/api/v1/engage/playbooks/check", json={"yaml": template}).json()[
            "errors"
        ]
        assert problem["message"].startswith("line 11: template error")
        # Saving the broken text is refused with the same line; nothing is stored.
        refused = http.post("/api/v1/engage/playbooks/source", json={"yaml": BROKEN})
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["message"].startswith("line 14:")
        assert http.get("/api/v1/engage/playbooks").json() == []

        fixed = BROKEN.replace("dayz", "days")
        checked = http.post("/api/v1/engage/playbooks/check", json={"yaml": fixed}).json()
        assert {k: checked[k] for k in ("valid", "errors", "name", "steps")} == {
            "valid": True, "errors": [], "name": "check-in", "steps": 3,
        }  # fmt: skip
        saved = http.post("/api/v1/engage/playbooks/source", json={"yaml": fixed})
        assert saved.status_code == 201 and saved.json()["version"] == 1
        # Read back as YAML a person can edit: the same playbook, without every default.
        source = http.get("/api/v1/engage/playbooks/check-in/source").json()
        assert (source["name"], source["version"], source["status"]) == ("check-in", 1, "active")
        assert yaml.safe_load(source["yaml"]) == yaml.safe_load(fixed)
        assert source["yaml"] == fixed  # written back as it was typed: order, indentation
        # An edit saves the next version; saving it unchanged stores nothing new.
        edited = source["yaml"].replace("days: 3", "days: 5")
        assert http.post("/api/v1/engage/playbooks/source",
                         json={"yaml": edited}).json()["version"] == 2  # fmt: skip
        assert http.post("/api/v1/engage/playbooks/source",
                         json={"yaml": edited}).json()["version"] == 2  # fmt: skip
        assert http.get("/api/v1/engage/playbooks/nope/source").status_code == 404
        # The write key (ingestion only) cannot edit playbooks.
        write = {"Authorization": f"Bearer {tenant.write_key}"}
        assert http.post("/api/v1/engage/playbooks/check", json={"yaml": fixed},
                         headers=write).status_code == 403  # fmt: skip


UPGRADED = {
    "name": "upgraded",
    "trigger": {"type": "event", "event": "Plan Upgraded"},
    "steps": [
        {"id": "thanks", "type": "send", "category": "account", "purpose": "transactional",
         "content": {"subject": "Thanks",
                     "text": "You now have {{ customer.traits.credits + 10 }} credits"}},
        {"id": "later", "type": "wait", "days": 7},
        {"id": "ask", "type": "wait_until", "event": "Review Written", "days": 14},
    ],
}  # fmt: skip


def test_journeys_in_flight_show_the_step_the_wait_and_the_error(live_server: LiveServer) -> None:
    db = live_server.db
    tenant = make_tenant(db)
    ws = tenant.id
    now = datetime(2024, 6, 12, 12, 0, tzinfo=UTC)
    with db.transaction() as session:
        repo.set_policy(session, ws, Policy(quiet_hours=None, caps=[]))
    credits = {"ann": 5, "bob": "lots", "cat": 0}  # "lots" + 10 fails Bob's template
    ids = {user: add_customer(db, ws, user, traits={"credits": c, "name": user.title()},
                              at=now - timedelta(days=1))
           for user, c in credits.items()}  # fmt: skip
    pb.apply_playbook(db, ws, pb.parse_playbook(UPGRADED))
    ingest(db, ws, [{"type": "track", "event": "Plan Upgraded", "userId": user,
                     "messageId": f"up-{user}", "timestamp": now.isoformat()}
                    for user in credits])  # fmt: skip
    run_due(db, ws, now)
    # A week later Ann and Cat move on to wait for a review, for 14 days from then.
    later = now + timedelta(days=7, minutes=1)
    run_due(db, ws, later)
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url, headers=auth) as http:
        page = http.get("/api/v1/engage/playbooks/upgraded/journeys").json()
        assert page["total"] == 3 and page["counts"] == {"waiting": 2, "failed": 1}
        rows = {r["customer"]: r for r in page["items"]}
        assert set(rows) == {"Ann", "Bob", "Cat"}
        for who in ("Ann", "Cat"):
            row = rows[who]
            assert (row["state"], row["step"], row["step_number"], row["steps"]) == (
                "waiting", "ask", 3, 3)  # fmt: skip
            assert row["waiting_for"] == "Review Written"
            wake = datetime.fromisoformat(row["wake_at"].replace("Z", "+00:00"))
            assert wake == later + timedelta(days=14)
            assert row["error"] is None
        bob = rows["Bob"]
        assert bob["customer_id"] == ids["bob"] and bob["state"] == "failed"
        assert bob["wake_at"] is None
        assert bob["error"].startswith("thanks: ") and "TypeError" in bob["error"]
        # Paged in the database: waits first (soonest to end), the failed one after.
        first = http.get("/api/v1/engage/playbooks/upgraded/journeys?per_page=2").json()
        second = http.get("/api/v1/engage/playbooks/upgraded/journeys?per_page=2&page=2").json()
        assert [r["state"] for r in first["items"]] == ["waiting", "waiting"]
        assert [r["customer"] for r in second["items"]] == ["Bob"]
        failed = http.get("/api/v1/engage/playbooks/upgraded/journeys?state=failed").json()
        assert failed["total"] == 1 and failed["items"][0]["customer"] == "Bob"
        done = http.get("/api/v1/engage/playbooks/upgraded/journeys?state=completed").json()
        assert (done["total"], done["items"]) == (0, [])
        assert http.get("/api/v1/engage/playbooks/nope/journeys").status_code == 404
        other = make_tenant(db, "other")
        assert http.get("/api/v1/engage/playbooks/upgraded/journeys",
                        headers={"Authorization": f"Bearer {other.secret_key}"}
                        ).status_code == 404  # fmt: skip


def answer(db: Database, ws: int, key: str, customer: int, score: int, at: datetime,
           comment: str | None = None) -> None:  # fmt: skip
    """Ask ``customer`` the survey at ``at`` and answer through the signed link, as they would
    (a comment, if any, an hour later through the comment box)."""
    survey = SurveyDefinition.model_validate(
        next(s.definition for s in surveys.list_surveys(db, ws) if s.key == key)
    )
    with db.transaction() as session:
        [request] = surveys.survey_requests(session, ws, survey, [customer], at)
    token = re.search(r"token=([^&\s]+)", request.content.text)
    assert token is not None
    result = survey_answers.answer_survey(db, Answer(token=token.group(1), score=score), now=at)
    if comment is not None:
        assert result.comment_token is not None
        survey_answers.add_comment(db, result.comment_token, comment, now=at + timedelta(hours=1))


def test_survey_results_match_nps_and_csat_worked_by_hand(live_server: LiveServer) -> None:
    db = live_server.db
    tenant = make_tenant(db)
    ws = tenant.id
    surveys.save_survey(db, ws, SurveyDefinition(key="nps", type="nps"))
    surveys.save_survey(db, ws, SurveyDefinition(key="csat", type="csat"))
    people = [add_customer(db, ws, f"p{i}") for i in range(7)]
    march, april = datetime(2024, 3, 5, tzinfo=UTC), datetime(2024, 4, 9, tzinfo=UTC)
    # March: 10, 9, 7, 3 (a comment on the 3, added as revision 2 of the same response).
    for who, score in zip(people, (10, 9, 7), strict=False):
        answer(db, ws, "nps", who, score, march)
    answer(db, ws, "nps", people[3], 3, march, comment="Terrible support, very disappointed.")
    # April: 6 and 10 (with a happy comment); one more person asked who never answers.
    answer(db, ws, "nps", people[4], 6, april)
    answer(db, ws, "nps", people[5], 10, april, comment="Love it, great service!")
    with db.transaction() as session:
        surveys.survey_requests(session, ws, SurveyDefinition(key="nps", type="nps"),
                                [people[6]], april)  # fmt: skip
    for who, score in zip(people, (5, 4, 3, 1), strict=False):
        answer(db, ws, "csat", who, score, april)
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url, headers=auth) as http:
        nps = http.get("/api/v1/engage/surveys/nps/results").json()
        # By hand: six responses (the comment does not count twice), promoters 10, 9, 10 = 3,
        # passives 7 = 1, detractors 3, 6 = 2; NPS = 100 * (3 - 2) / 6 = 16.67.
        assert (nps["responses"], nps["asked"]) == (6, 7)
        assert (nps["promoters"], nps["passives"], nps["detractors"]) == (3, 1, 2)
        assert nps["value"] == 16.67 and nps["metric"] == "NPS"
        assert nps["response_rate"] == round(6 / 7, 4)
        assert nps["mean_score"] == round((10 + 9 + 7 + 3 + 6 + 10) / 6, 4)
        assert nps["distribution"] == {str(s): {10: 2, 9: 1, 7: 1, 3: 1, 6: 1}.get(s, 0)
                                       for s in range(11)}  # fmt: skip
        # March: 2 promoters, 1 detractor of 4 = 25; April: 1 and 1 of 2 = 0.
        assert [(p["period"], p["responses"], p["value"]) for p in nps["trend"]] == [
            ("2024-03", 4, 25.0), ("2024-04", 2, 0.0)]  # fmt: skip
        quarter = http.get("/api/v1/engage/surveys/nps/results?granularity=quarter").json()
        assert [(p["period"], p["value"]) for p in quarter["trend"]] == [
            ("2024-Q1", 25.0),
            ("2024-Q2", 0.0),
        ]
        csat = http.get("/api/v1/engage/surveys/csat/results").json()
        # 4 and 5 are satisfied: 2 of 4 = 50%; 1 is dissatisfied, 3 neutral.
        assert (csat["value"], csat["metric"], csat["responses"]) == (50.0, "CSAT %", 4)
        assert (csat["promoters"], csat["passives"], csat["detractors"]) == (2, 1, 1)
        # Comments newest first, with VADER's tone; paged and filtered in the database.
        comments = http.get("/api/v1/engage/surveys/nps/comments").json()
        assert comments["total"] == 2 and nps["comments"] == 2
        assert [(c["comment"], c["score"], c["tone"]) for c in comments["items"]] == [
            ("Love it, great service!", 10, "positive"),
            ("Terrible support, very disappointed.", 3, "negative"),
        ]
        assert comments["items"][0]["customer"] == "p5@example.com"
        one = http.get("/api/v1/engage/surveys/nps/comments?per_page=1&page=2").json()
        assert [c["score"] for c in one["items"]] == [3] and one["total"] == 2
        negative = http.get("/api/v1/engage/surveys/nps/comments?tone=negative").json()
        assert [c["score"] for c in negative["items"]] == [3]
        assert http.get("/api/v1/engage/surveys/nope/results").status_code == 404


def test_referral_stats_count_the_funnel_and_the_fraud_reasons(live_server: LiveServer) -> None:
    db = live_server.db
    tenant = make_tenant(db)
    ws = tenant.id
    referrals.set_program(db, ws, PROGRAM)
    add_customer(db, ws, "ada", email_address="ada@gmail.com")
    [code] = referrals.issue_codes(db, ws, T0, stages=[])
    referred(db, ws, code.code, "bob")  # a clean referral: qualifies
    referred(db, ws, code.code, "cy", email="A.d.a+friends@googlemail.com")  # flagged: alias
    referred(db, ws, code.code, "dee", revenue=20.0)  # below the 50 minimum: not qualified
    referrals.process(db, ws, T0 + timedelta(days=2))
    [flagged] = referrals.list_referrals(db, ws, "review")
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url, headers=auth) as http:
        before = http.get("/api/v1/engage/referrals/stats").json()
        assert before["in_review"] == 1 and before["fraud_rejected"] == 0
        reject = http.post(f"/api/v1/engage/referrals/{flagged.id}/review",
                           json={"approve": False, "note": "same person"})  # fmt: skip
        assert reject.status_code == 200
        stats = http.get("/api/v1/engage/referrals/stats").json()
    assert stats == {
        "codes": 1, "clicks": 3, "referred": 3,
        "converted": 2,  # Bob and Cy bought 60 >= 50; Dee's 20 did not qualify
        "in_review": 0, "qualified": 1, "rewarded": 0, "points_rewarded": 0,
        "rejected": 2,
        "fraud_rejected": 1,  # Cy: the e-mail alias; Dee's rejection is not fraud
        "rejected_reasons": {"email_alias": 1, "qualifying": 1},
    }  # fmt: skip


def test_a_task_is_assigned_and_completed(live_server: LiveServer) -> None:
    db = live_server.db
    tenant = make_tenant(db)
    ws = tenant.id
    cid = add_customer(db, ws, "ann")
    now = datetime(2024, 6, 12, tzinfo=UTC)
    with db.transaction() as session:
        for n in (1, 2):
            session.add(EngageTask(workspace_id=ws, customer_id=cid, kind="call",
                                   title=f"Call {n}", status="open", dedupe_key=f"t{n}",
                                   detail={}, created_at=now))  # fmt: skip
    with db.session() as session:
        first, second = session.scalars(select(EngageTask.id).order_by(EngageTask.id)).all()
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url, headers=auth) as http:
        assigned = http.patch(f"/api/v1/engage/tasks/{first}", json={"owner": "sam@shop.test"})
        assert assigned.status_code == 200 and assigned.json()["owner"] == "sam@shop.test"
        mine = http.get("/api/v1/engage/tasks", params={"owner": "sam@shop.test"}).json()
        assert [t["id"] for t in mine] == [first]
        nobody = http.get("/api/v1/engage/tasks", params={"owner": ""}).json()
        assert [t["id"] for t in nobody] == [second]
        done = http.patch(f"/api/v1/engage/tasks/{first}", json={"status": "done"}).json()
        assert done["status"] == "done" and done["closed_at"] is not None
        assert [t["id"] for t in http.get("/api/v1/engage/tasks").json()] == [second]
        assert [t["id"] for t in http.get("/api/v1/engage/tasks?status=done").json()] == [first]
        reopened = http.patch(f"/api/v1/engage/tasks/{first}", json={"status": "open"}).json()
        assert reopened["closed_at"] is None
        other = make_tenant(db, "other")
        stranger = {"Authorization": f"Bearer {other.secret_key}"}
        assert http.patch(f"/api/v1/engage/tasks/{first}", json={"status": "done"},
                          headers=stranger).status_code == 404  # fmt: skip
        bad = http.patch(f"/api/v1/engage/tasks/{first}", json={"status": "closed"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][-1] == "status"


def test_the_uplift_shown_matches_a_wald_interval_worked_by_hand(live_server: LiveServer) -> None:
    """The report the playbook page shows: goal rates of the treated and the holdout, their
    difference and its 95% Wald interval, recomputed here from the journeys' arms."""
    import math

    from clm.engage.playbooks.journey_steps import tick
    from tests.engage.test_playbooks import NOW, orders, population, stage_changes

    db = live_server.db
    ws, ids = population(db, 120)
    book = pb.parse_playbook({
        "name": "convert", "trigger": {"type": "stage_changed", "to": "conversion"},
        "goal": {"event": "Order Completed", "within_days": 30}, "holdout": 0.3,
        "steps": [{"id": "hi", "type": "send", "category": "welcome",
                   "content": {"subject": "Hi", "text": "Hello"}}],
    })  # fmt: skip
    pb.apply_playbook(db, ws, book)
    users = list(ids)
    stage_changes(db, ws, users, "conversion", NOW)
    tick(db, ws, NOW)
    arms = {u: pb.journey_history(db, ws, ids[u])[0].arm for u in users}
    treated = [u for u in users if arms[u] == "treatment"]
    control = [u for u in users if arms[u] == "control"]
    # Two in three treated buy within the window, one in four of the holdout; one more
    # treated customer buys after the 30 days, which must not count.
    buyers = treated[::3] + treated[1::3] + control[::4]
    orders(db, ws, buyers, NOW + timedelta(days=3))
    orders(db, ws, treated[2::3][:1], NOW + timedelta(days=45))
    t_n, t_k = len(treated), len(treated[::3]) + len(treated[1::3])
    c_n, c_k = len(control), len(control[::4])
    t_p, c_p = t_k / t_n, c_k / c_n
    se = math.sqrt(t_p * (1 - t_p) / t_n + c_p * (1 - c_p) / c_n)
    from clm.store import workspaces

    with db.transaction() as session:
        token = workspaces.issue_key(session, "secret", ws).key
    with httpx.Client(base_url=live_server.url,
                      headers={"Authorization": f"Bearer {token}"}) as http:  # fmt: skip
        report = http.get("/api/v1/engage/playbooks/convert/report").json()
    assert (report["treatment"]["enrolled"], report["treatment"]["reached_goal"]) == (t_n, t_k)
    assert (report["control"]["enrolled"], report["control"]["reached_goal"]) == (c_n, c_k)
    assert report["uplift"] == pytest.approx(t_p - c_p, abs=1e-4)
    assert report["ci_low"] == pytest.approx(t_p - c_p - 1.96 * se, abs=2e-4)
    assert report["ci_high"] == pytest.approx(t_p - c_p + 1.96 * se, abs=2e-4)
    assert report["goal"] == "event Order Completed within 30d"


def test_the_form_editor_reads_the_draft_and_writes_it_back_as_yaml(
    live_server: LiveServer,
) -> None:
    tenant = make_tenant(live_server.db)
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url, headers=auth) as http:
        # The check hands the YAML back as data, mistakes and all (the form shows it).
        check = http.post("/api/v1/engage/playbooks/check", json={"yaml": BROKEN}).json()
        assert check["valid"] is False
        draft = check["draft"]
        assert draft["steps"][1] == {"id": "pause", "type": "wait", "dayz": 3}
        assert draft["trigger"] == {"type": "stage_changed", "to": "at_risk"}
        # The form fixes the key and changes the channel; the server writes the YAML.
        draft["steps"][1] = {"id": "pause", "type": "wait", "days": 3}
        draft["steps"][0]["channel"] = "sms"
        written = http.post("/api/v1/engage/playbooks/yaml", json={"draft": draft})
        assert written.status_code == 200
        text = written.json()["yaml"]
        assert text.startswith("name: check-in\ndescription: ")  # in the order people write
        assert "  - id: pause\n    type: wait\n    days: 3\n" in text
        again = http.post("/api/v1/engage/playbooks/check", json={"yaml": text}).json()
        assert (again["valid"], again["draft"]) == (True, draft)
        # A mistake the form makes is named by the same check, with its line in that text.
        draft["holdout"] = 0.9
        text = http.post("/api/v1/engage/playbooks/yaml", json={"draft": draft}).json()["yaml"]
        line = text.splitlines().index("holdout: 0.9") + 1
        bad = http.post("/api/v1/engage/playbooks/check", json={"yaml": text}).json()
        assert [e["message"].split(":")[0] for e in bad["errors"]] == [f"line {line}"]
        assert "holdout" in str(bad["errors"][0]["loc"])
        # Text that is not a mapping has no draft; a reader may not ask.
        assert (
            http.post("/api/v1/engage/playbooks/check", json={"yaml": "- a\n"}).json()["draft"]
            is None
        )
        assert http.post("/api/v1/engage/playbooks/yaml", json={"draft": draft},
                         headers={"Authorization": "Bearer nope"}).status_code == 401  # fmt: skip


COMMENTED = """\
# Win back the customers who turn at risk (owner: growth team).
name: check-in   # listed by this name
description: A note when a customer turns at risk, then a call
trigger:
  type: health_changed
  to: at_risk    # not unhappy: those get the survey

holdout: 0.1
steps:
  # First a personal note.
  - id: note
    type: send
    category: winback
    content:
      subject: "How are we doing, {{ first_name }}?"
      text: We noticed you have not been back.
  - id: call   # a person calls
    type: task
    title: Call the customer
"""


def test_a_form_edit_keeps_the_yaml_comments_and_layout(live_server: LiveServer) -> None:
    """One form edit (the trigger's state) changes that one line of the person's text: every
    comment, the blank line, the quoting and the indentation stay; the check still passes."""
    tenant = make_tenant(live_server.db)
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url, headers=auth) as http:
        check = http.post("/api/v1/engage/playbooks/check", json={"yaml": COMMENTED}).json()
        assert check["valid"] is True
        draft = check["draft"]
        draft["trigger"]["to"] = "unhappy"
        written = http.post(
            "/api/v1/engage/playbooks/yaml", json={"draft": draft, "yaml": COMMENTED}
        )
        assert written.status_code == 200
        text = written.json()["yaml"]
        before, after = COMMENTED.splitlines(), text.splitlines()
        changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        assert changed == [
            ("  to: at_risk    # not unhappy: those get the survey",
             "  to: unhappy    # not unhappy: those get the survey"),
        ]  # fmt: skip
        again = http.post("/api/v1/engage/playbooks/check", json={"yaml": text}).json()
        assert (again["valid"], again["draft"]) == (True, draft)
        # Without the text (an older client) the draft is written afresh, comments and all gone.
        fresh = http.post("/api/v1/engage/playbooks/yaml", json={"draft": draft}).json()["yaml"]
        assert "#" not in fresh and yaml.safe_load(fresh) == draft


def test_the_yaml_is_read_back_as_saved_and_a_json_save_leaves_no_stale_text(
    live_server: LiveServer,
) -> None:
    """Saved as commented YAML, read back byte for byte; a change of comments only replaces
    the text of the same version; a changed definition saved as JSON is a new version whose
    YAML is its definition (the old text is not served for it); each version keeps its own."""
    tenant = make_tenant(live_server.db)
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    source = "/api/v1/engage/playbooks/check-in/source"
    with httpx.Client(base_url=live_server.url, headers=auth) as http:
        saved = http.post("/api/v1/engage/playbooks/source", json={"yaml": COMMENTED})
        assert (saved.status_code, saved.json()["version"]) == (201, 1)
        got = http.get(source).json()
        assert (got["yaml"], got["version"], got["as_saved"]) == (COMMENTED, 1, True)
        # Only a comment changed: the same playbook, so no new version, but the new text.
        recommented = COMMENTED.replace("# a person calls", "# the account manager calls")
        assert http.post("/api/v1/engage/playbooks/source",
                         json={"yaml": recommented}).json()["version"] == 1  # fmt: skip
        assert http.get(source).json()["yaml"] == recommented
        # Saved as JSON with a changed holdout: version 2, served as its own definition.
        changed = yaml.safe_load(COMMENTED) | {"holdout": 0.2}
        assert http.post("/api/v1/engage/playbooks", json=changed).json()["version"] == 2
        got = http.get(source).json()
        assert (got["version"], got["as_saved"]) == (2, False)
        assert "#" not in got["yaml"] and "holdout: 0.2\n" in got["yaml"]
        assert pb.parse_playbook(got["yaml"]) == pb.parse_playbook(changed)
        # The commented text again (holdout 0.1): version 3 with its text; the same definition
        # then saved as JSON is not a new version and leaves that text, which still says it.
        assert http.post("/api/v1/engage/playbooks/source",
                         json={"yaml": COMMENTED}).json()["version"] == 3  # fmt: skip
        same = http.post("/api/v1/engage/playbooks", json=yaml.safe_load(COMMENTED)).json()
        assert same["version"] == 3
        assert http.get(source).json()["yaml"] == COMMENTED
        # Every version keeps its own text.
        assert http.get(source, params={"version": 1}).json()["yaml"] == recommented
        old = http.get(source, params={"version": 2}).json()
        assert (old["as_saved"], old["status"]) == (False, "retired")
        assert pb.parse_playbook(old["yaml"]) == pb.parse_playbook(changed)
        assert http.get(source, params={"version": 4}).status_code == 404
        bad = http.get(source, params={"version": 0})
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][-1] == "version"
