"""The hand-written wire form parses back, with the standard library, to what was meant."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from hypothesis import given
from hypothesis import strategies as st

from clm.engage.delivery.mime import render_email


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_headers_and_parts_round_trip() -> None:
    raw = render_email(
        sender="Zoë's Shop <hello@shop.test>",
        to="ann@example.com",
        subject="Bienvenue, Zoë! " + "très " * 40,
        text="Line one\nLine two = ok\n" + "long " * 50,
        html="<p>Héllo</p>",
        idempotency_key="pb-1-hello",
        headers={"List-Unsubscribe": "<https://clm.test/public/unsubscribe?token=abc>"},
    )
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line ends only
    parsed = parse(raw)
    assert parsed["From"] == "Zoë's Shop <hello@shop.test>"
    assert parsed["Subject"] == "Bienvenue, Zoë! " + "très " * 40
    assert parsed["List-Unsubscribe"] == "<https://clm.test/public/unsubscribe?token=abc>"
    assert parsed["X-CLM-Idempotency-Key"] == "pb-1-hello"
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and html is not None
    # Text travels in its canonical form, CRLF line ends.
    assert plain.get_content() == "Line one\r\nLine two = ok\r\n" + "long " * 50 + "\r\n"
    assert html.get_content() == "<p>Héllo</p>\r\n"


def test_a_template_cannot_inject_a_header() -> None:
    raw = render_email(
        sender="shop@shop.test", to="ann@example.com",
        subject="Hi\r\nBcc: victim@example.com", text="x", html=None, idempotency_key="k",
    )  # fmt: skip
    parsed = parse(raw)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Hi Bcc: victim@example.com"
    assert parsed.get_content_type() == "text/plain"


@given(subject=st.text(max_size=200), text=st.text(max_size=500))
def test_any_text_survives(subject: str, text: str) -> None:
    raw = render_email(
        sender="s@shop.test", to="a@example.com", subject=subject, text=text,
        html="<b>x</b>", idempotency_key="k",
    )  # fmt: skip
    parsed = parse(raw)
    flat = " ".join(subject.splitlines()).replace("\r", " ")
    assert str(parsed["Subject"]) == flat.strip() or str(parsed["Subject"]) == flat
    body = parsed.get_body(("plain",))
    assert body is not None
    expected = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    assert body.get_content() == (expected if expected.endswith("\r\n") else expected + "\r\n")
