"""Segment's analytics.js (``@segment/analytics-next``, pinned in ``tests/e2e/segment``) on a
page of a second loopback origin, in Debian's Chromium: its ``page``, ``identify`` and
``track`` calls cross origins to CLM's ``/v1`` (CORS, preflight included) and land as one
customer. No request leaves loopback: the SDK's settings and lazy chunks, which it would
fetch from Segment's CDN, are served by the page's own server (``cdnURL``/``cdnSettings``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from clm.privacy.settings import PrivacySettings, set_privacy_settings
from clm.store.models import Customer, Event, Identity
from tests.conftest import IN_CI, LiveServer, free_port, make_tenant

CHROMIUM = Path("/usr/bin/chromium")
BUNDLES = Path(__file__).parent / "segment/node_modules/@segment/analytics-next/dist/umd"

PAGE = """<!doctype html><html><head><title>Shop</title>
<script src="/analytics-next/bundles/index.js"></script></head><body><h1>Pricing</h1>
<script>
const writeKey = %(write_key)s;
window.sent = AnalyticsNext.AnalyticsBrowser.load({
  writeKey,
  cdnURL: location.origin,
  cdnSettings: {integrations: {"Segment.io": {apiKey: writeKey, apiHost: %(api_host)s,
                                              protocol: "http"}}},
}).then(async ([analytics]) => {
  await analytics.page("Pricing", {plan: "pro"});
  await analytics.identify("grace-42", {email: "grace@example.org", name: "Grace Hopper"});
  await analytics.track("Order Completed", {order_id: "o-1", revenue: 99.5});
  return analytics.user().anonymousId();
});
</script></body></html>"""


@dataclass
class Site:
    """The customer's website: the page and, as a CDN would, the SDK's files and settings."""

    url: str
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def website(live_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[tuple[Site, str]]:
    """The site, allowed as an origin of the workspace unless the test says ``False``."""
    allowed = getattr(request, "param", True)
    if not (BUNDLES / "index.js").exists():
        if IN_CI:
            pytest.fail("analytics-next missing: scripts/setup installs tests/e2e/segment")
        pytest.skip("analytics-next not installed: run scripts/setup (npm ci in tests/e2e/segment)")
    tenant = make_tenant(live_server.db)
    port = free_port()
    site = Site(f"http://127.0.0.1:{port}")
    api_host = live_server.url.removeprefix("http://") + "/v1"
    settings = {"integrations": {"Segment.io": {"apiKey": tenant.write_key, "apiHost": api_host,
                                                "protocol": "http"}}}  # fmt: skip
    page = PAGE % {"write_key": json.dumps(tenant.write_key), "api_host": json.dumps(api_host)}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.paths.append(self.path)
            body, kind = b"", "text/plain"
            if self.path == "/":
                body, kind = page.encode(), "text/html"
            elif self.path.startswith("/v1/projects/"):
                body, kind = json.dumps(settings).encode(), "application/json"
            elif self.path.startswith("/analytics-next/bundles/"):
                name = self.path.rsplit("/", 1)[1].split("?", 1)[0]
                file = BUNDLES / name
                if file.is_file() and file.parent == BUNDLES:
                    body, kind = file.read_bytes(), "application/javascript"
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # Configured before the API answers its first CORS request (origins are cached briefly).
    with live_server.db.transaction() as session:
        origins = [site.url] if allowed else ["https://someone-else.example"]
        set_privacy_settings(session, tenant.id, PrivacySettings(cors_origins=origins))
    try:
        yield site, tenant.write_key
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("CI=true requires /usr/bin/chromium (scripts/setup installs it)")
        pytest.skip("no /usr/bin/chromium: run scripts/setup as root to install it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run",
                  # Belt and braces: any name but loopback fails to resolve.
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )  # fmt: skip
        yield browser
        browser.close()


def test_analytics_js_on_another_origin_lands_as_one_customer(
    live_server: LiveServer, website: tuple[Site, str], chromium: Any
) -> None:
    site, _write_key = website
    page = chromium.new_page()
    requests: list[tuple[str, str]] = []
    page.on("request", lambda r: requests.append((r.method, r.url)))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site.url + "/")
    anonymous_id = page.evaluate("window.sent")
    assert errors == []
    # Every request stayed on loopback: the page's origin and CLM's.
    assert {url.split("/", 3)[2] for _, url in requests} == {
        site.url.removeprefix("http://"),
        live_server.url.removeprefix("http://"),
    }
    posted = sorted(url.rsplit("/", 1)[1] for method, url in requests if method == "POST")
    assert posted == ["i", "p", "t"]
    db = live_server.db
    with db.session() as session:
        rows = session.execute(
            select(Event.type, Event.name, Event.anonymous_id, Event.user_id, Event.revenue,
                   Event.context, Identity.customer_id)
            .join(Identity, Identity.id == Event.identity_id)
            .order_by(Event.id)
        ).all()  # fmt: skip
        grace = session.scalars(select(Customer).where(Customer.user_id == "grace-42")).one()
    assert [(r.type, r.name) for r in rows] == [
        ("page", "Pricing"), ("identify", None), ("track", "Order Completed")]  # fmt: skip
    # One customer: the anonymous page view and the identified calls resolve to Grace.
    assert {r.customer_id for r in rows} == {grace.id}
    assert grace.email == "grace@example.org" and grace.traits["name"] == "Grace Hopper"
    assert {r.anonymous_id for r in rows} == {anonymous_id}
    assert [r.user_id for r in rows] == [None, "grace-42", "grace-42"]
    assert rows[2].revenue == 99.5
    assert rows[0].context["page"]["url"] == site.url + "/"
    assert "Chrome" in rows[0].context["userAgent"]


@pytest.mark.parametrize("website", [False], indirect=True)
def test_a_page_whose_origin_is_not_allowed_sends_nothing(
    live_server: LiveServer, website: tuple[Site, str], chromium: Any
) -> None:
    site, _write_key = website
    page = chromium.new_page()
    with page.expect_console_message(lambda m: "CORS policy" in m.text, timeout=20_000):
        page.goto(site.url + "/")
    with live_server.db.session() as session:
        assert session.scalars(select(Event.id)).all() == []
