"""Every route of the app, called by every role and key kind, allowed or denied as ONE table
says. A route missing from the table fails the test: whoever adds a route classifies it here.

The table is written by hand from the README's role table, not derived from the code's own
permission map, so a wrong grant in ``clm.accounts.roles`` or a wrong dependency on a route
shows up as a mismatch.
"""

from __future__ import annotations

import re

import pytest

from clm.web import APP_PAGES, create_app
from tests.accounts.conftest import Staff
from tests.accounts.routes import app_routes

PEOPLE = {"owner", "admin", "marketer", "customer_success", "viewer"}
KEYS = {"write_key", "read_key", "manage_key", "secret_key", "admin_key"}
EVERYONE = PEOPLE | KEYS | {"anonymous"}

READ = {"owner", "admin", "marketer", "customer_success", "viewer", "read_key", "manage_key",
        "secret_key"}  # fmt: skip
SUPPORT = {"owner", "admin", "customer_success", "manage_key", "secret_key"}
MARKETING = {"owner", "admin", "marketer", "manage_key", "secret_key"}
CONFIGURE = {"owner", "admin", "manage_key", "secret_key"}
MEMBERS = {"owner", "admin"}
AUDIT = {"owner", "admin", "manage_key", "secret_key"}
INGEST = {"write_key", "manage_key", "secret_key"}
WORKSPACES = {"admin_key"}
SIGNED_IN = PEOPLE
# Public: links carrying their own signed token, sign-in itself, docs, the static pages. For
# these the check is that credentials change nothing: every caller gets the same status.
PUBLIC = "public"

TABLE: dict[tuple[str, str], set[str] | str] = {
    ("MOUNT", "/"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # The web app's page shells and vendored assets: no data in them, every number comes
    # through /api/v1 with the caller's own credentials.
    ("GET", "/assets/vendor/{path:path}"): PUBLIC,
    **{("GET", f"/{page}"): PUBLIC for page in APP_PAGES},
    **{("GET", f"/{page}/{{rest:path}}"): PUBLIC for page in APP_PAGES},
    # accounts
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/reset-request"): PUBLIC,
    ("POST", "/api/v1/auth/reset"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): SIGNED_IN,
    ("GET", "/api/v1/auth/session"): SIGNED_IN,
    ("PUT", "/api/v1/auth/session"): SIGNED_IN,
    ("GET", "/api/v1/members"): MEMBERS,
    ("PUT", "/api/v1/members"): MEMBERS,
    ("DELETE", "/api/v1/members/{user_id}"): MEMBERS,
    ("GET", "/api/v1/audit"): AUDIT,
    # management
    ("GET", "/api/v1/workspaces"): WORKSPACES,
    ("POST", "/api/v1/workspaces"): WORKSPACES,
    ("GET", "/api/v1/workspace"): READ,
    ("GET", "/api/v1/workspace/stats"): READ,
    ("GET", "/api/v1/keys"): CONFIGURE,
    ("POST", "/api/v1/keys"): CONFIGURE,
    ("DELETE", "/api/v1/keys/{key_id}"): CONFIGURE,
    ("GET", "/api/v1/customers"): READ,
    ("GET", "/api/v1/customers/lookup"): READ,
    ("GET", "/api/v1/customers/{customer_id}"): READ,
    ("GET", "/api/v1/customers/{customer_id}/timeline"): READ,
    ("GET", "/api/v1/customers/{customer_id}/lifecycle"): READ,
    ("GET", "/api/v1/customers/{customer_id}/predictions"): READ,
    ("POST", "/api/v1/customers/{customer_id}/notes"): SUPPORT,
    ("GET", "/api/v1/customers/{customer_id}/notes"): READ,
    ("GET", "/api/v1/customers/{customer_id}/engagement"): READ,
    ("GET", "/api/v1/customer-list"): READ,
    ("GET", "/api/v1/customer-list.csv"): READ,
    ("GET", "/api/v1/overview/trends"): READ,
    ("GET", "/api/v1/overview/movers"): READ,
    ("GET", "/api/v1/overview/retention"): READ,
    ("GET", "/api/v1/overview/revenue-at-risk"): READ,
    ("GET", "/api/v1/overview/funnel"): READ,
    # saved segments: written by whoever edits playbooks (they trigger on segments)
    ("GET", "/api/v1/segments"): READ,
    ("POST", "/api/v1/segments"): MARKETING,
    ("POST", "/api/v1/segments/preview"): MARKETING,
    ("GET", "/api/v1/segments/{segment_id}"): READ,
    ("PATCH", "/api/v1/segments/{segment_id}"): MARKETING,
    ("DELETE", "/api/v1/segments/{segment_id}"): MARKETING,
    ("GET", "/api/v1/segments/{segment_id}/members"): READ,
    ("GET", "/api/v1/segments/{segment_id}/members.csv"): READ,
    ("GET", "/api/v1/segments/{segment_id}/sizes"): READ,
    ("GET", "/api/v1/events"): READ,
    # privacy: export and erase read or destroy everything about a person
    ("GET", "/api/v1/customers/{customer_id}/export"): CONFIGURE,
    ("POST", "/api/v1/customers/{customer_id}/erase"): CONFIGURE,
    ("DELETE", "/api/v1/customers/{customer_id}"): CONFIGURE,
    ("GET", "/api/v1/customers/{customer_id}/consents"): READ,
    ("GET", "/api/v1/privacy/settings"): READ,
    ("PUT", "/api/v1/privacy/settings"): CONFIGURE,
    # lifecycle
    ("GET", "/api/v1/lifecycle/model"): READ,
    ("PUT", "/api/v1/lifecycle/model"): CONFIGURE,
    ("POST", "/api/v1/lifecycle/model/preview"): CONFIGURE,
    ("GET", "/api/v1/lifecycle/jobs/{job_id}"): CONFIGURE,
    ("GET", "/api/v1/lifecycle/counts"): READ,
    ("GET", "/api/v1/lifecycle/transitions"): READ,
    ("GET", "/api/v1/health/scorecard"): READ,
    ("PUT", "/api/v1/health/scorecard"): CONFIGURE,
    ("POST", "/api/v1/health/scorecard/preview"): CONFIGURE,
    ("POST", "/api/v1/health/backtest"): CONFIGURE,
    ("GET", "/api/v1/health/jobs/{job_id}"): CONFIGURE,
    # predictions
    ("POST", "/api/v1/predictions/fit"): CONFIGURE,
    ("GET", "/api/v1/predictions/fits/latest"): READ,
    ("GET", "/api/v1/predictions/plots/{name}"): READ,
    # reports
    ("GET", "/api/v1/reports"): READ,
    ("GET", "/api/v1/reports/{name}"): READ,
    ("POST", "/api/v1/reports/spend"): MARKETING,
    # engage: settings
    ("PUT", "/api/v1/engage/channels/email"): CONFIGURE,
    ("PUT", "/api/v1/engage/channels/sms"): CONFIGURE,
    ("PUT", "/api/v1/engage/channels/webhook"): CONFIGURE,
    ("PATCH", "/api/v1/engage/channels/{channel}"): CONFIGURE,
    ("GET", "/api/v1/engage/policy"): READ,
    ("GET", "/api/v1/engage/channels"): READ,
    ("PUT", "/api/v1/engage/policy"): CONFIGURE,
    ("POST", "/api/v1/engage/tick"): CONFIGURE,
    ("PUT", "/api/v1/engage/consents"): SUPPORT,
    # engage: marketing
    ("GET", "/api/v1/engage/messages"): READ,
    ("POST", "/api/v1/engage/messages"): MARKETING,
    ("GET", "/api/v1/engage/surveys"): READ,
    ("POST", "/api/v1/engage/surveys"): MARKETING,
    ("POST", "/api/v1/engage/surveys/{survey_key}/send"): MARKETING,
    ("GET", "/api/v1/engage/playbooks"): READ,
    ("POST", "/api/v1/engage/playbooks"): MARKETING,
    ("POST", "/api/v1/engage/playbooks/validate"): MARKETING,
    ("POST", "/api/v1/engage/playbooks/check"): MARKETING,
    ("POST", "/api/v1/engage/playbooks/yaml"): MARKETING,
    ("POST", "/api/v1/engage/playbooks/source"): MARKETING,
    ("GET", "/api/v1/engage/playbooks/{name}/source"): READ,
    ("GET", "/api/v1/engage/playbooks/{name}/journeys"): READ,
    ("GET", "/api/v1/engage/surveys/{survey_key}/results"): READ,
    ("GET", "/api/v1/engage/surveys/{survey_key}/comments"): READ,
    ("GET", "/api/v1/engage/referrals/stats"): READ,
    ("POST", "/api/v1/engage/playbooks/{name}/pause"): MARKETING,
    ("POST", "/api/v1/engage/playbooks/{name}/resume"): MARKETING,
    ("GET", "/api/v1/engage/playbooks/{name}/report"): READ,
    ("GET", "/api/v1/engage/customers/{customer_id}/journeys"): READ,
    ("PUT", "/api/v1/engage/referrals/program"): MARKETING,
    ("POST", "/api/v1/engage/referrals/codes"): MARKETING,
    ("POST", "/api/v1/engage/referrals/process"): CONFIGURE,
    ("PUT", "/api/v1/engage/programs/points"): MARKETING,
    ("POST", "/api/v1/engage/coupons"): MARKETING,
    ("GET", "/api/v1/engage/testimonials"): READ,
    ("GET", "/api/v1/engage/testimonials/feed-token"): MARKETING,
    ("POST", "/api/v1/engage/testimonials/{testimonial_id}/review"): MARKETING,
    # engage: customer success
    ("GET", "/api/v1/engage/tasks"): READ,
    ("PATCH", "/api/v1/engage/tasks/{task_id}"): SUPPORT,
    ("GET", "/api/v1/engage/referrals"): READ,
    ("POST", "/api/v1/engage/referrals/{referral_id}/review"): SUPPORT,
    ("POST", "/api/v1/engage/points/earn"): SUPPORT,
    ("POST", "/api/v1/engage/points/redeem"): SUPPORT,
    ("GET", "/api/v1/engage/points/{customer_id}"): READ,
    ("POST", "/api/v1/engage/coupons/{code}/validate"): SUPPORT,
    ("POST", "/api/v1/engage/coupons/{code}/redeem"): SUPPORT,
    # public links (their own signed tokens)
    ("GET", "/public/e/c/{token}"): PUBLIC,
    ("GET", "/public/e/o/{token}"): PUBLIC,
    ("GET", "/public/r/{code}"): PUBLIC,
    ("GET", "/public/surveys/answer"): PUBLIC,
    ("POST", "/public/surveys/answer"): PUBLIC,
    ("POST", "/public/surveys/answer-form"): PUBLIC,
    ("POST", "/public/surveys/comment"): PUBLIC,
    ("POST", "/public/testimonials"): PUBLIC,
    ("GET", "/public/testimonials/embed"): PUBLIC,
    ("GET", "/public/testimonials/feed"): PUBLIC,
    ("GET", "/public/testimonials/form"): PUBLIC,
    ("POST", "/public/testimonials/form"): PUBLIC,
    ("GET", "/public/unsubscribe"): PUBLIC,
    ("POST", "/public/unsubscribe"): PUBLIC,
    # Segment tracking API
    **{("POST", f"/v1/{kind}"): INGEST
       for kind in ("alias", "batch", "group", "identify", "import", "page", "screen", "track")},
    # ... and analytics.js' short paths for the same calls
    **{("POST", f"/v1/{short}"): INGEST for short in "abgipst"},
}  # fmt: skip


def test_every_route_is_classified_and_every_row_is_a_route(tmp_path: object) -> None:
    from clm.store.engine import Database

    db = Database.open(f"sqlite:///{tmp_path}/routes.sqlite")
    routes = app_routes(create_app(db))
    db.dispose()
    missing = sorted(routes - TABLE.keys())
    stale = sorted(TABLE.keys() - routes)
    assert not missing, f"routes without a row in TABLE (classify them): {missing}"
    assert not stale, f"rows in TABLE for routes that no longer exist: {stale}"


def _url(path: str) -> str:
    # Ids that name nothing: an allowed caller gets 404 or 422, a denied one 401 or 403.
    return re.sub(r"\{(\w+)\}", lambda m: "999999" if m.group(1).endswith("id") else "x", path)


def _order(route: tuple[str, str]) -> tuple[bool, str, str]:
    return (route == ("POST", "/api/v1/auth/logout"), route[1], route[0])  # sign out last


@pytest.mark.slow
def test_every_role_and_key_on_every_route(staff: Staff) -> None:
    failures: list[str] = []
    for method, path in sorted(TABLE, key=_order):
        allowed = TABLE[method, path]
        url = "/" if method == "MOUNT" else _url(path)
        verb = "GET" if method == "MOUNT" else method
        statuses: dict[str, int] = {}
        for name, caller in staff.callers.items():
            body = {} if verb in ("POST", "PUT", "PATCH") else None
            response = staff.client.request(verb, url, headers=caller.headers, json=body)
            status = statuses[name] = response.status_code
            if status >= 500:
                failures.append(f"{name} {verb} {url}: {status} {response.text[:200]}")
            elif allowed == PUBLIC:
                continue
            elif name in allowed and status in (401, 403):
                failures.append(f"{name} denied {verb} {path}: {status} {response.text[:160]}")
            elif name not in allowed and status not in (401, 403):
                failures.append(f"{name} allowed {verb} {path}: {status}")
            elif name == "anonymous" and status != 401:
                failures.append(f"anonymous {verb} {path}: {status}, expected 401")
        if allowed == PUBLIC and len(set(statuses.values())) != 1:
            failures.append(f"public {verb} {path} answers differently by caller: {statuses}")
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_every_state_changing_route_refuses_a_cookie_without_the_csrf_token(
    staff: Staff,
) -> None:
    """The owner's own session cookie, replayed without ``X-CSRF-Token`` (what a forged
    cross-site form sends), is refused on every POST, PUT, PATCH and DELETE it may call."""
    cookie_only = {"Cookie": staff.callers["owner"].headers["Cookie"]}
    failures = []
    for (method, path), allowed in sorted(TABLE.items(), key=lambda item: _order(item[0])):
        if method in ("GET", "MOUNT") or allowed == PUBLIC or "owner" not in allowed:
            continue
        response = staff.client.request(method, _url(path), headers=cookie_only, json={})
        if response.status_code != 403 or response.json().get("code") != "csrf_failed":
            failures.append(f"{method} {path}: {response.status_code} {response.text[:120]}")
    assert not failures, "\n".join(failures)
