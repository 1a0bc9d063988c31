"""Reset links on SQLite and PostgreSQL: single use, expiry, a too-short password does not
burn the link, and a reset ends the person's sessions and lockout."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clm.accounts import operator, resets, sessions, users
from clm.accounts.passwords import verify_password
from clm.errors import AuthError, RateLimited, ValidationError
from clm.store.engine import Database
from clm.store.models import LoginFailure

OLD, NEW = "the old passphrase", "the new passphrase"


@pytest.fixture
def person(db: Database) -> int:
    with db.transaction() as session:
        return users.create_user(session, operator("test"), "p@example.com", OLD).id


def _token(db: Database, user_id: int, minutes: int | None = None) -> str:
    with db.transaction() as session:
        user = users.get_user(session, user_id)
        return resets.create_reset(session, user, minutes)


def _reset(db: Database, token: str, password: str = NEW) -> None:
    with db.transaction() as session:
        resets.complete_reset(session, token, password)


def test_a_link_works_once(db: Database, person: int) -> None:
    token = _token(db, person)
    _reset(db, token)
    with db.session() as session:
        assert verify_password(users.get_user(session, person).password_hash, NEW)
    with pytest.raises(AuthError, match="invalid, used or expired"):
        _reset(db, token, "a third passphrase")
    with db.session() as session:
        assert verify_password(users.get_user(session, person).password_hash, NEW)


def test_an_expired_link_is_refused(db: Database, person: int) -> None:
    token = _token(db, person, minutes=-1)
    with pytest.raises(AuthError, match="invalid, used or expired"):
        _reset(db, token)


def test_a_forged_token_is_refused(db: Database, person: int) -> None:
    real = _token(db, person)
    with pytest.raises(AuthError):
        _reset(db, real[:-2] + ("AA" if not real.endswith("AA") else "BB"))


def test_a_too_short_password_does_not_burn_the_link(db: Database, person: int) -> None:
    token = _token(db, person)
    with pytest.raises(ValidationError):
        _reset(db, token, "short")
    _reset(db, token)  # still valid: the failed attempt rolled back


def test_a_reset_kills_other_links_sessions_and_the_lockout(db: Database, person: int) -> None:
    signed = sessions.login(db, "p@example.com", OLD, "10.0.0.1")
    other_link = _token(db, person)
    for _ in range(5):
        with pytest.raises(AuthError):
            sessions.login(db, "p@example.com", "wrong guess!", "10.0.0.2")
    with pytest.raises(RateLimited):
        sessions.login(db, "p@example.com", OLD, "10.0.0.2")
    _reset(db, _token(db, person))
    with db.session() as session:
        assert sessions.resolve(session, signed.token) is None
        assert resets.open_links(session, person) == 0
        assert session.query(LoginFailure).count() == 0
    with pytest.raises(AuthError):
        _reset(db, other_link)
    assert sessions.login(db, "p@example.com", NEW, "10.0.0.2").expires_at > datetime.now(UTC)
