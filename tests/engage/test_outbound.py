"""Outbound safety: webhook and SMS targets cannot reach loopback, link-local or private
networks, nor plain http, unless the operator allows it; checked at configuration and again
at each send (DNS rebinding), and the send connects to the address that was checked."""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from clm.config import Settings, get_settings
from clm.engage import repository as repo
from clm.engage.delivery import deliver as delivery
from clm.engage.delivery import outbound, outbox
from clm.engage.delivery.outbound import OutboundRefused, check_target
from clm.engage.schemas import Content, Policy, SendRequest, SmsProvider, WebhookProvider
from clm.errors import NotFound, ValidationError
from clm.store.engine import Database
from clm.store.models import EngageMessage
from tests.conftest import LiveServer, free_port, make_tenant
from tests.engage.conftest import HttpReceiver, add_customer

NOON = datetime(2024, 6, 12, 12, 0, tzinfo=UTC)
STRICT = Settings(outbound_allow_http=False, outbound_allowed_networks="")
PUBLIC = "93.184.215.14"  # a globally routable address (example.com's, once)


def _dns(answers: dict[str, Sequence[str]]) -> outbound.Resolver:
    """A stand-in for DNS: the name server's answers, so the test decides what a name means."""

    def resolve(host: str, port: int) -> Sequence[str]:
        if host not in answers:
            raise outbound.Unresolvable(f"host {host!r} does not resolve")
        return answers[host]

    return resolve


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example/x", "only https"),
        ("ftp://hooks.example/x", "scheme 'ftp'"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://127.8.9.10:8443/x", "loopback"),
        ("https://2130706433/x", "loopback"),  # 127.0.0.1 written as one number
        ("https://[::1]/x", "loopback"),
        ("https://[::ffff:127.0.0.1]/x", "loopback"),  # IPv4-mapped IPv6
        ("https://169.254.169.254/latest/meta-data", "link-local"),  # cloud metadata
        ("https://[fe80::1]/x", "link-local"),
        ("https://10.1.2.3/x", "private"),
        ("https://172.16.0.1/x", "private"),
        ("https://192.168.1.1/x", "private"),
        ("https://[fd00::1]/x", "private"),
        ("https://100.64.0.1/x", "not globally routable"),  # carrier-grade NAT
        ("https://0.0.0.0/x", "0.0.0.0"),
        ("https://224.0.0.1/x", "multicast"),
        ("https://localhost/x", "loopback"),
        ("https://hooks.example/x", "private"),  # one public and one private answer
    ],
)
def test_unsafe_targets_are_refused(url: str, why: str) -> None:
    dns = _dns({"hooks.example": [PUBLIC, "10.0.0.7"]})
    with pytest.raises(OutboundRefused, match=why):
        check_target(url, settings=STRICT, resolve=dns if "hooks.example" in url else None)


def test_public_https_target_is_pinned_to_the_checked_address() -> None:
    target = check_target(
        "https://hooks.example:8443/in?x=1",
        settings=STRICT,
        resolve=_dns({"hooks.example": [PUBLIC, "2606:2800:220:1::1"]}),
    )
    assert target.url == f"https://{PUBLIC}:8443/in?x=1"
    assert target.headers == {"Host": "hooks.example:8443"}
    assert target.extensions == {"sni_hostname": "hooks.example"}  # the certificate still checks


def test_the_operator_allowance_is_per_network_and_http_is_separate() -> None:
    allowed = Settings(outbound_allow_http=True, outbound_allowed_networks="127.0.0.0/8")
    assert check_target("http://127.0.0.1:9/x", settings=allowed).url == "http://127.0.0.1:9/x"
    with pytest.raises(OutboundRefused, match="private"):
        check_target("http://10.0.0.1/x", settings=allowed)
    only_net = Settings(outbound_allow_http=False, outbound_allowed_networks="127.0.0.0/8")
    with pytest.raises(OutboundRefused, match="only https"):
        check_target("http://127.0.0.1:9/x", settings=only_net)


def _strict_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLM_OUTBOUND_ALLOW_HTTP", "false")
    monkeypatch.setenv("CLM_OUTBOUND_ALLOWED_NETWORKS", "")
    get_settings.cache_clear()


def test_configuring_an_internal_target_is_a_field_error(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _strict_env(monkeypatch)
    tenant = make_tenant(db)
    with db.transaction() as session, pytest.raises(ValidationError) as raised:
        repo.set_provider(session, tenant.id, WebhookProvider(url="https://[::1]/h", secret="s"))
    assert [e.loc for e in raised.value.errors] == [("url",)]
    with db.transaction() as session, pytest.raises(ValidationError) as raised:
        sms = SmsProvider(base_url="https://10.0.0.2", account_sid="AC1", auth_token="t",
                          sender="+15550001")  # fmt: skip
        repo.set_provider(session, tenant.id, sms)
    assert [e.loc for e in raised.value.errors] == [("base_url",)]


def test_the_api_refuses_an_internal_webhook_with_422(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _strict_env(monkeypatch)
    tenant = make_tenant(live_server.db)
    auth = {"Authorization": f"Bearer {tenant.secret_key}"}
    with httpx.Client(base_url=live_server.url) as http:
        for url in (live_server.url, "https://169.254.169.254/", "https://localhost:1/"):
            reply = http.put("/api/v1/engage/channels/webhook", headers=auth,
                             json={"url": url, "secret": "s"})  # fmt: skip
            assert reply.status_code == 422, url
            assert reply.json()["errors"][0]["loc"] == ["url"]
    with live_server.db.session() as session, pytest.raises(NotFound):
        repo.get_provider(session, tenant.id, "webhook")


def _queue_webhook(db: Database, url: str) -> int:
    tenant = make_tenant(db)
    cid = add_customer(db, tenant.id, "ada")
    with db.transaction() as session:
        repo.set_policy(session, tenant.id, Policy(quiet_hours=None))
        repo.set_consent(session, tenant.id, cid, "webhook", "marketing", True)
        repo.set_provider(session, tenant.id, WebhookProvider(url=url, secret="s"))
    request = SendRequest(customer_id=cid, channel="webhook", content=Content(body={"a": "b"}),
                          idempotency_key="k1")  # fmt: skip
    outbox.send(db, tenant.id, [request], now=NOON)
    return tenant.id


def test_rebinding_after_configuration_is_refused_at_send_time(
    sqlite_db: Database, http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Configured while the name pointed at a public address...
    monkeypatch.setattr(outbound, "system_resolve", _dns({"hooks.clm.test": [PUBLIC]}))
    port = http_receiver.url.rsplit(":", 1)[1]
    _queue_webhook(sqlite_db, f"http://hooks.clm.test:{port}/in")
    # ...then the name is re-pointed at loopback, which this server does not allow.
    _strict_env(monkeypatch)
    monkeypatch.setenv("CLM_OUTBOUND_ALLOW_HTTP", "true")
    get_settings.cache_clear()
    monkeypatch.setattr(outbound, "system_resolve", _dns({"hooks.clm.test": ["127.0.0.1"]}))
    report = delivery.deliver_due(sqlite_db, now=NOON)
    assert (report.sent, report.dead) == (0, 1)
    assert http_receiver.requests == []
    with sqlite_db.session() as session:
        row = session.scalars(select(EngageMessage)).one()
    assert row.status == "dead"
    assert row.last_error is not None and "loopback" in row.last_error


def test_the_send_connects_to_the_checked_address_not_a_second_lookup(
    sqlite_db: Database, http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``.test`` names never resolve in real DNS: the request can only arrive if the client
    # connected to the address our check vetted, carrying the name in the Host header.
    monkeypatch.setattr(outbound, "system_resolve", _dns({"hooks.clm.test": ["127.0.0.1"]}))
    port = http_receiver.url.rsplit(":", 1)[1]
    _queue_webhook(sqlite_db, f"http://hooks.clm.test:{port}/in")
    assert delivery.deliver_due(sqlite_db, now=NOON).sent == 1
    [hit] = http_receiver.requests
    assert hit.path == "/in"
    assert hit.headers["Host"] == f"hooks.clm.test:{port}"


@contextlib.contextmanager
def _https_receiver(ca: Any, name: str) -> Iterator[tuple[int, list[str], list[str]]]:
    """A real HTTPS server on loopback with a certificate for ``name`` from ``ca``; yields
    (port, server names the clients asked for by SNI, Host headers of requests received)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    asked: list[str] = []
    hosts: list[str] = []
    context.sni_callback = lambda _sock, server_name, _ctx: asked.append(server_name) and None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hosts.append(self.headers["Host"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port, asked, hosts
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize(("certified", "delivered"), [("hooks.clm.test", True),
                                                      ("someone-else.test", False)])  # fmt: skip
def test_https_is_pinned_yet_the_certificate_is_verified_for_the_hostname(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch, certified: str, delivered: bool
) -> None:
    import trustme

    _strict_env(monkeypatch)  # https only; loopback allowed for this receiver alone
    monkeypatch.setenv("CLM_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.1/32")
    get_settings.cache_clear()
    monkeypatch.setattr(outbound, "system_resolve", _dns({"hooks.clm.test": ["127.0.0.1"]}))
    ca = trustme.CA()
    with _https_receiver(ca, certified) as (port, asked, hosts):
        _queue_webhook(sqlite_db, f"https://hooks.clm.test:{port}/in")
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        with httpx.Client(verify=trusting) as http:
            report = delivery.deliver_due(sqlite_db, now=NOON, http=http)
    # The connection went to the checked IP, but TLS asked for and checked the hostname.
    assert asked and set(asked) == {"hooks.clm.test"}
    assert report.sent == (1 if delivered else 0)
    assert hosts == ([f"hooks.clm.test:{port}"] if delivered else [])
