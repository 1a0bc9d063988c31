"""Who may do what: roles of people per workspace, kinds of machine keys, and one check.

Every request, page and command asks one question, ``authorize(principal, permission)``; the
tables below are the whole policy. Permissions, least first:

``ingest``      send events (the Segment ``/v1`` API)
``read``        read everything in the workspace: customers, events, stages, reports, settings
``support``     customer success work: notes, tasks, referral and testimonial reviews, points,
                coupon checks, a customer's consent
``marketing``   playbooks, surveys, messages, referral and points programs, coupons
``configure``   stage models, health scorecards, channels, policy, keys, predictions, ticks
``members``     add people to the workspace and change their roles
``audit``       read the audit log
``workspaces``  create and list workspaces (the server-wide admin key only)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from clm.errors import AuthError, PermissionDenied


class Permission(StrEnum):
    INGEST = "ingest"
    READ = "read"
    SUPPORT = "support"
    MARKETING = "marketing"
    CONFIGURE = "configure"
    MEMBERS = "members"
    AUDIT = "audit"
    WORKSPACES = "workspaces"


class Role(StrEnum):
    """A person's role in one workspace, most powerful first."""

    OWNER = "owner"
    ADMIN = "admin"
    MARKETER = "marketer"
    CUSTOMER_SUCCESS = "customer_success"
    VIEWER = "viewer"


P = Permission
_STAFF = frozenset({P.READ, P.SUPPORT, P.MARKETING, P.CONFIGURE, P.MEMBERS, P.AUDIT})

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: _STAFF,
    Role.ADMIN: _STAFF,  # an admin cannot make, change or remove an owner (see members.py)
    Role.MARKETER: frozenset({P.READ, P.MARKETING}),
    Role.CUSTOMER_SUCCESS: frozenset({P.READ, P.SUPPORT}),
    Role.VIEWER: frozenset({P.READ}),
}

# Machine keys. ``secret`` is the kind every workspace was given before scoped keys: it keeps
# working, as ``manage``. Managing people needs a person (or the CLI), never a key.
KEY_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "write": frozenset({P.INGEST}),
    "read": frozenset({P.READ}),
    "manage": frozenset({P.INGEST, P.READ, P.SUPPORT, P.MARKETING, P.CONFIGURE, P.AUDIT}),
    "secret": frozenset({P.INGEST, P.READ, P.SUPPORT, P.MARKETING, P.CONFIGURE, P.AUDIT}),
    "admin": frozenset({P.WORKSPACES}),
}


@dataclass(frozen=True)
class Principal:
    """Who is acting: a signed-in person (with a role) or a key (with a kind), in a workspace.

    ``actor`` is how the audit log names them (``user:ann@example.com``, ``key:12``,
    ``cli:alice``); exactly one of ``user_id`` and ``key_id`` is set, except for the operator
    at the command line, who has neither.
    """

    actor: str
    permissions: frozenset[Permission]
    workspace_id: int | None = None
    user_id: int | None = None
    key_id: int | None = None
    role: Role | None = None
    key_kind: str | None = None
    session_id: int | None = None

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


def operator(name: str, workspace_id: int | None = None) -> Principal:
    """The person at the server's command line: they hold the database, so they may do all."""
    return Principal(f"cli:{name}", frozenset(Permission), workspace_id)


def authorize(principal: Principal | None, permission: Permission) -> Principal:
    """``principal`` if it may do ``permission``; else 401 (nobody) or 403 (not allowed)."""
    if principal is None:
        raise AuthError("Sign in or send an API key")
    if not principal.can(permission):
        if principal.key_kind:
            who = f"a {principal.key_kind} key lacks"
        elif principal.role:
            who = f"the {principal.role} role lacks"
        else:
            who = "you lack: you have no role in this workspace"
        raise PermissionDenied(f"This needs the {permission} permission, which {who}")
    if permission is not Permission.WORKSPACES and principal.workspace_id is None:
        raise PermissionDenied("This needs a workspace")
    return principal


def rank(role: Role) -> int:
    """0 for owner, 4 for viewer: lower ranks may not be managed by higher ones."""
    return list(Role).index(role)
