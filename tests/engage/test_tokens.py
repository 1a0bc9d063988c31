"""Link tokens: the compact format of unsubscribe links, next to the itsdangerous one."""

from __future__ import annotations

import pytest

from clm.engage.delivery.tokens import sign, sign_compact, verify
from clm.errors import AuthError

T0 = 1_700_000_000.0
DAY = 86_400


def test_compact_token_round_trip_expiry_and_purpose() -> None:
    token = sign_compact("unsubscribe", 7, 42, "email", data={"a": "ann@example.com"}, now=T0)
    assert token.startswith("v2.") and len(token) < 140
    claims = verify(token, "unsubscribe", 400 * DAY, now=T0 + 399 * DAY)
    assert (claims.workspace_id, claims.customer_id, claims.subject) == (7, 42, "email")
    assert claims.data == {"a": "ann@example.com"} and claims.jti
    with pytest.raises(AuthError) as expired:
        verify(token, "unsubscribe", 400 * DAY, now=T0 + 401 * DAY)
    assert expired.value.code == "token_expired"
    with pytest.raises(AuthError) as other_purpose:  # a survey link can never unsubscribe
        verify(token, "survey", 400 * DAY, now=T0)
    assert other_purpose.value.code == "token_invalid"


@pytest.mark.parametrize("change", ["body", "mac", "truncate", "secret"])
def test_tampered_compact_tokens_are_refused(change: str) -> None:
    token = sign_compact("unsubscribe", 7, 42, "email", data={"a": "ann@example.com"}, now=T0)
    body, mac = token.removeprefix("v2.").split(".")
    forged = {
        "body": f"v2.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{mac}",
        "mac": f"v2.{body}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        "truncate": f"v2.{body}",
    }.get(change, token)
    secret = "another-secret-0123456789abcdef" if change == "secret" else None
    with pytest.raises(AuthError) as refused:
        verify(forged, "unsubscribe", 400 * DAY, secret=secret, now=T0)
    assert refused.value.code == "token_invalid"


def test_links_already_sent_in_the_old_format_still_work() -> None:
    token, jti = sign("unsubscribe", 7, 42, "email", data={"a": "ann@example.com"})
    claims = verify(token, "unsubscribe", 400 * DAY)
    assert (claims.customer_id, claims.jti, claims.data["a"]) == (42, jti, "ann@example.com")
