"""The one exception tree of CLM; the API maps each class to one HTTP status.

ClmError                      500  something we did not expect
├── ValidationError           422  input broke a rule; ``errors`` lists each field
├── PayloadTooLarge           413  a message or batch over Segment's size limits
├── AuthError                 401  missing or unknown key
│   └── PermissionDenied      403  the key exists but may not do this
├── NotFound                  404  no such workspace, customer, ...
├── Conflict                  409  the request contradicts what is stored
├── RateLimited               429  too many attempts; ``retry_after`` seconds to wait
└── Unavailable               503  a part CLM needs is down; retrying later is safe
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: ``loc`` is the path to it, as in pydantic."""

    loc: tuple[str | int, ...]
    message: str
    type: str = "value_error"

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "message": self.message, "type": self.type}


@dataclass
class ClmError(Exception):
    message: str
    errors: Sequence[FieldError] = field(default_factory=tuple)
    code: str = "internal_error"
    status_code: int = 500

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.errors:
            return self.message
        details = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.message}" for e in self.errors)
        return f"{self.message} ({details})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "errors": [e.as_dict() for e in self.errors],
        }


@dataclass
class ValidationError(ClmError):
    code: str = "validation_error"
    status_code: int = 422


@dataclass
class PayloadTooLarge(ClmError):
    code: str = "payload_too_large"
    status_code: int = 413


@dataclass
class AuthError(ClmError):
    code: str = "unauthorized"
    status_code: int = 401


@dataclass
class PermissionDenied(AuthError):
    code: str = "forbidden"
    status_code: int = 403


@dataclass
class NotFound(ClmError):
    code: str = "not_found"
    status_code: int = 404


@dataclass
class Conflict(ClmError):
    code: str = "conflict"
    status_code: int = 409


@dataclass
class RateLimited(ClmError):
    retry_after: int = 60
    code: str = "rate_limited"
    status_code: int = 429


@dataclass
class Unavailable(ClmError):
    code: str = "unavailable"
    status_code: int = 503


__all__ = [
    "AuthError",
    "ClmError",
    "Conflict",
    "FieldError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "Unavailable",
    "ValidationError",
]
