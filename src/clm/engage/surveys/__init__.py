"""Surveys: definitions, sending, signed answer links, answers and their follow-ups.

The names below are the package's public surface (what the API, CLI and worker use); each is
loaded from its module on first use, so that importing one module of a sub-package never runs
the others (the sub-packages depend on each other's modules, not on each other's surfaces).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clm.engage._lazy import lazy_getattr

if TYPE_CHECKING:
    from clm.engage.surveys.schemas import Answer, AnswerResult, SurveyDefinition, SurveyPublic
    from clm.engage.surveys.service import list_surveys, run_schedules, save_survey, send_survey

_WHERE = {
    "Answer": "schemas",
    "AnswerResult": "schemas",
    "SurveyDefinition": "schemas",
    "SurveyPublic": "schemas",
    "list_surveys": "service",
    "run_schedules": "service",
    "save_survey": "service",
    "send_survey": "service",
}

__all__ = [
    "Answer",
    "AnswerResult",
    "SurveyDefinition",
    "SurveyPublic",
    "list_surveys",
    "run_schedules",
    "save_survey",
    "send_survey",
]


__getattr__ = lazy_getattr(__name__, _WHERE, globals())
