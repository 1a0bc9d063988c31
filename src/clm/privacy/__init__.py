"""Privacy: export and erase one person, the tombstone rule, consent history, retention.

- :func:`export_customer` — everything CLM holds about a person as one JSON-ready document.
- :func:`erase_customer` — the one deletion path of the event log, leaving keyed-hash
  tombstones so the same identifiers are refused later.
- :func:`apply_retention` — purge a workspace's events older than its retention policy.
"""

from clm.privacy.erasure import ErasureReport, erase_customer
from clm.privacy.export import export_customer
from clm.privacy.retention import RetentionReport, apply_retention, apply_retention_all

__all__ = [
    "ErasureReport",
    "RetentionReport",
    "apply_retention",
    "apply_retention_all",
    "erase_customer",
    "export_customer",
]
