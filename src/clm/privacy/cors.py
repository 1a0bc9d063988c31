"""Which browser origins may send events to ``/v1``, per workspace (``cors_origins``).

Read from the workspaces' settings and kept a few seconds per process (``ttl``): a preflight
or an event must not cost a query each, and a changed setting applies within the TTL.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from clm.store.engine import Database
from clm.store.models import Workspace

DEFAULT_TTL = 5.0


class AllowedOrigins:
    """Per-workspace allowed origins, refreshed from the database at most every ``ttl`` s."""

    def __init__(self, db: Database, ttl: float = DEFAULT_TTL) -> None:
        self.db = db
        self.ttl = ttl
        self._lock = threading.Lock()
        self._loaded_at = -float("inf")
        self._by_workspace: dict[int, frozenset[str]] = {}
        self._any: frozenset[str] = frozenset()

    def _fresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._loaded_at < self.ttl:
                return
            with self.db.session() as session:
                rows = session.execute(select(Workspace.id, Workspace.settings)).all()
            by_workspace = {}
            for workspace_id, settings in rows:
                origins = ((settings or {}).get("privacy") or {}).get("cors_origins") or []
                if origins:
                    by_workspace[int(workspace_id)] = frozenset(str(o) for o in origins)
            self._by_workspace = by_workspace
            self._any = frozenset().union(*by_workspace.values()) if by_workspace else frozenset()
            self._loaded_at = time.monotonic()

    def allows(self, workspace_id: int, origin: str) -> bool:
        """Whether pages of ``origin`` may send this workspace's events."""
        self._fresh()
        return origin.lower() in self._by_workspace.get(workspace_id, frozenset())

    def allowed_anywhere(self, origin: str) -> bool:
        """Whether any workspace allows ``origin``: what a preflight (which carries no key)
        can be answered by; the request that follows is checked against its own workspace."""
        self._fresh()
        return origin.lower() in self._any
