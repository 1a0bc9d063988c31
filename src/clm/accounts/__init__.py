"""Accounts: people and their sessions, roles per workspace, scoped machine keys, the audit log.

The public surface other packages use:

- ``authorize(principal, permission)``: the one access check (API, web app and CLI alike);
- ``Principal``, ``Permission``, ``Role`` and the tables that map roles and key kinds to
  permissions;
- ``record(session, who, action, target, before=..., after=...)``: append an audit record
  inside the caller's transaction;
- the services in ``users``, ``sessions``, ``resets``, ``keys`` and ``audit``.
"""

from __future__ import annotations

from clm.accounts.audit import Actor, AuditPublic, list_records, record
from clm.accounts.roles import (
    KEY_PERMISSIONS,
    ROLE_PERMISSIONS,
    Permission,
    Principal,
    Role,
    authorize,
    operator,
)

__all__ = [
    "KEY_PERMISSIONS",
    "ROLE_PERMISSIONS",
    "Actor",
    "AuditPublic",
    "Permission",
    "Principal",
    "Role",
    "authorize",
    "list_records",
    "operator",
    "record",
]
