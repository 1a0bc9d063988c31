"""Playbooks and journeys: what to do next for a customer, run by the clock.

The names below are the package's public surface (what the API, CLI and worker use); each is
loaded from its module on first use, so that importing one module of a sub-package never runs
the others (the sub-packages depend on each other's modules, not on each other's surfaces).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clm.engage._lazy import lazy_getattr

if TYPE_CHECKING:
    from clm.engage.playbooks.journeys import cursor, set_cursor
    from clm.engage.playbooks.schedule import EngageTickReport, run_due
    from clm.engage.playbooks.schemas import JourneyPublic, PlaybookPublic, PlaybookReport
    from clm.engage.playbooks.service import (
        apply_playbook,
        journey_history,
        list_playbooks,
        parse_playbook,
        playbook_report,
        set_paused,
        shipped_playbook,
    )

_WHERE = {
    "EngageTickReport": "schedule",
    "JourneyPublic": "schemas",
    "PlaybookPublic": "schemas",
    "PlaybookReport": "schemas",
    "apply_playbook": "service",
    "cursor": "journeys",
    "journey_history": "service",
    "list_playbooks": "service",
    "parse_playbook": "service",
    "playbook_report": "service",
    "run_due": "schedule",
    "set_cursor": "journeys",
    "set_paused": "service",
    "shipped_playbook": "service",
}

__all__ = [
    "EngageTickReport",
    "JourneyPublic",
    "PlaybookPublic",
    "PlaybookReport",
    "apply_playbook",
    "cursor",
    "journey_history",
    "list_playbooks",
    "parse_playbook",
    "playbook_report",
    "run_due",
    "set_cursor",
    "set_paused",
    "shipped_playbook",
]


__getattr__ = lazy_getattr(__name__, _WHERE, globals())
