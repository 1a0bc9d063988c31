"""Delivery over the wire: SMTP email, Twilio-compatible SMS, signed webhooks.

Every delivery carries the message's idempotency key (``Message-ID`` and
``X-CLM-Idempotency-Key`` for email, ``I-Twilio-Idempotency-Token`` for SMS,
``Idempotency-Key`` for webhooks), so a receiver that honours it never acts twice on a retry.
Secrets (SMTP password, SMS token, webhook secret) are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import time
from typing import Any, Protocol

import httpx
import orjson

from clm.engage.delivery.mime import envelope_sender, render_email
from clm.engage.delivery.outbound import OutboundRefused, Unresolvable, check_target
from clm.engage.delivery.tracking import tracked_html
from clm.engage.schemas import EmailProvider, SmsProvider, WebhookProvider

SIGNATURE_HEADER = "X-CLM-Signature"


class DeliveryError(Exception):
    """A failed attempt; ``permanent`` ones are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Outgoing(Protocol):
    id: int
    workspace_id: int
    address: str | None
    payload: dict[str, Any]
    idempotency_key: str


def build_email(provider: EmailProvider, message: Outgoing) -> bytes:
    """A multipart email: plain text, optional HTML (opens and clicks tracked), and
    List-Unsubscribe (RFC 2369 and 8058)."""
    payload = message.payload
    headers = {}
    unsubscribe = payload.get("unsubscribe_url")
    if unsubscribe:
        headers["List-Unsubscribe"] = f"<{unsubscribe}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    html = payload.get("html")
    if html and provider.track_engagement:
        html = tracked_html(html, message.workspace_id, message.id)
    return render_email(
        sender=provider.sender,
        to=message.address or "",
        subject=payload.get("subject") or "",
        text=payload.get("text") or "",
        html=html,
        idempotency_key=message.idempotency_key,
        headers=headers,
    )


class SmtpSession:
    """One SMTP connection reused for a batch of messages."""

    def __init__(self, provider: EmailProvider) -> None:
        self.provider = provider
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is None:
            p = self.provider
            smtp = smtplib.SMTP(p.host, p.port, timeout=p.timeout)
            try:
                if p.starttls:
                    smtp.starttls()
                if p.username and p.password is not None:
                    smtp.login(p.username, p.password.get_secret_value())
            except Exception:
                smtp.close()
                raise
            self._smtp = smtp
        return self._smtp

    def send(self, message: Outgoing) -> None:
        if not message.address:
            raise DeliveryError("no address", permanent=True)
        try:
            self._connect().sendmail(
                envelope_sender(self.provider.sender),
                [message.address],
                build_email(self.provider, message),
            )
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"recipient refused: {exc.recipients}", permanent=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise DeliveryError(f"smtp: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


def _check_response(response: httpx.Response, what: str) -> None:
    if response.status_code < 300:
        return
    # 4xx other than 408/429 will not get better by retrying.
    permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 409, 429)
    raise DeliveryError(f"{what}: HTTP {response.status_code}", permanent=permanent)


def _post(client: httpx.Client, url: str, what: str, **kwargs: Any) -> httpx.Response:
    """POST to a target checked right now (DNS rebinding) and connect to the checked address."""
    try:
        target = check_target(url)
    except OutboundRefused as exc:
        permanent = not isinstance(exc, Unresolvable)
        raise DeliveryError(f"{what}: target refused: {exc}", permanent=permanent) from exc
    headers = {**kwargs.pop("headers", {}), **target.headers}
    try:
        return client.post(target.url, headers=headers, extensions=target.extensions, **kwargs)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"{what}: {type(exc).__name__}") from exc


def send_sms(client: httpx.Client, provider: SmsProvider, message: Outgoing) -> None:
    base = provider.base_url.rstrip("/")
    url = f"{base}/2010-04-01/Accounts/{provider.account_sid}/Messages.json"
    response = _post(
        client,
        url,
        "sms",
        data={
            "To": message.address or "",
            "From": provider.sender,
            "Body": message.payload.get("body", ""),
        },
        auth=(provider.account_sid, provider.auth_token.get_secret_value()),
        headers={"I-Twilio-Idempotency-Token": message.idempotency_key},
        timeout=provider.timeout,
    )
    _check_response(response, "sms")


def sign_webhook(secret: str, body: bytes, timestamp: int) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``: the receiver recomputes and compares,
    and rejects old timestamps to stop replays."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_webhook(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """What a receiver does (and what our tests do): signature and freshness."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = sign_webhook(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def send_webhook(client: httpx.Client, provider: WebhookProvider, message: Outgoing) -> None:
    body = orjson.dumps(message.payload.get("body", {}))
    signature = sign_webhook(provider.secret.get_secret_value(), body, int(time.time()))
    response = _post(
        client,
        provider.url,
        "webhook",
        content=body,
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature,
            "Idempotency-Key": message.idempotency_key,
        },
        timeout=provider.timeout,
    )
    _check_response(response, "webhook")
