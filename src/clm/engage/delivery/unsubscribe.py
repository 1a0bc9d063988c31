"""One-click unsubscribe (RFC 8058): a signed link, no key; idempotent."""

from __future__ import annotations

from datetime import UTC, datetime

from clm.engage import eventlog
from clm.engage import repository as repo
from clm.engage.delivery.tokens import verify

UNSUBSCRIBE_MAX_AGE = 400 * 86_400


def unsubscribe(db: object, token: str, *, now: datetime | None = None) -> str:
    """Suppress the address for marketing and revoke marketing consent; returns the channel."""
    from clm.store.engine import Database

    assert isinstance(db, Database)
    at = now or datetime.now(UTC)
    claims = verify(token, "unsubscribe", UNSUBSCRIBE_MAX_AGE)
    channel, address = claims.subject, str(claims.data.get("a", ""))
    with db.transaction() as session:
        repo.suppress(session, claims.workspace_id, channel, address, "unsubscribed")
        if claims.customer_id is not None:
            repo.set_consent(
                session,
                claims.workspace_id,
                claims.customer_id,
                channel,  # type: ignore[arg-type]
                "marketing",
                False,
                "unsubscribe link",
            )
        profiles = repo.customer_profiles(session, claims.workspace_id, [claims.customer_id or 0])
    eventlog.write(
        db,
        claims.workspace_id,
        [
            eventlog.track(
                profiles.get(claims.customer_id or 0),
                "Unsubscribed",
                f"unsub-{claims.jti}",
                {"channel": channel, "reason": "one-click link"},
                at,
            )
        ],
    )
    return channel
