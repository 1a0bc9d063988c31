"""Password hashing: argon2id with argon2-cffi's defaults (RFC 9106's second recommendation)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from clm.errors import FieldError, ValidationError

MIN_LENGTH = 10
_hasher = PasswordHasher()  # argon2id, 64 MiB, 3 passes, 4 lanes
# Verified when the email is unknown, so a miss costs as long as a hit (no user enumeration).
_DUMMY = _hasher.hash("not a password anyone has")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValidationError(
            "Password too short",
            [FieldError(("password",), f"use at least {MIN_LENGTH} characters")],
        )
    if len(password) > 1024:
        raise ValidationError("Password too long", [FieldError(("password",), "at most 1024")])


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches; always spends one argon2 verification."""
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
