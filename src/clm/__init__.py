"""CLM: customer lifecycle management from your event log.

``clm.connect()`` opens the Python API (see ``clm.client``). Subpackages load on demand, so
``import clm.predict`` stays free of the database layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Clm", "Workspace", "__version__", "connect"]

if TYPE_CHECKING:
    from clm.client import Clm, Workspace, connect


def __getattr__(name: str) -> Any:
    if name in ("Clm", "Workspace", "connect"):
        from clm import client

        return getattr(client, name)
    raise AttributeError(f"module 'clm' has no attribute {name!r}")
