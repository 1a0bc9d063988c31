"""Lifecycle stages and health, computed from the event log.

Define stages in YAML (``load_stage_model``), store a version (``apply_stage_model``), compute
history on any engine (``run_lifecycle``, ``update_lifecycle``, ``tick``), and read it
(``stage_at``, ``customer_history``, ``transitions_between``, ``stage_counts``,
``customer_lifecycle``). Health: ``score_health`` (current scores, ``health_due``),
``recompute_health`` (history), ``health_now``, ``backtest``.
"""

from clm.lifecycle.backtest import BacktestReport, backtest
from clm.lifecycle.catalog import (
    apply_stage_model,
    get_stage_model,
    list_definitions,
    save_definition,
)
from clm.lifecycle.compiled import CompiledModel
from clm.lifecycle.customer import customer_lifecycle
from clm.lifecycle.definitions import FeatureDefinition, Scorecard, StageModel
from clm.lifecycle.health_current import HealthSummary, health_due, score_health
from clm.lifecycle.health_service import (
    health_history,
    health_now,
    recompute_health,
    run_health,
)
from clm.lifecycle.loader import (
    load_scorecard,
    load_stage_model,
    load_stage_model_file,
    shipped_model,
    shipped_model_names,
    shipped_model_text,
)
from clm.lifecycle.preview import preview_stage_model
from clm.lifecycle.queries import customer_history, stage_at, stage_counts, transitions_between
from clm.lifecycle.reference import LogEvent, Transition, reference_history
from clm.lifecycle.schemas import (
    CustomerLifecycle,
    DefinitionInfo,
    HealthPublic,
    Preview,
    RunResult,
    StageAt,
    TransitionPage,
    TransitionPublic,
)
from clm.lifecycle.service import compute_transitions, run_lifecycle, tick, update_lifecycle

__all__ = [
    "BacktestReport",
    "CompiledModel",
    "CustomerLifecycle",
    "DefinitionInfo",
    "FeatureDefinition",
    "HealthPublic",
    "HealthSummary",
    "LogEvent",
    "Preview",
    "RunResult",
    "Scorecard",
    "StageAt",
    "StageModel",
    "Transition",
    "TransitionPage",
    "TransitionPublic",
    "apply_stage_model",
    "backtest",
    "compute_transitions",
    "customer_history",
    "customer_lifecycle",
    "get_stage_model",
    "health_due",
    "health_history",
    "health_now",
    "list_definitions",
    "load_scorecard",
    "load_stage_model",
    "load_stage_model_file",
    "preview_stage_model",
    "recompute_health",
    "reference_history",
    "run_health",
    "run_lifecycle",
    "save_definition",
    "score_health",
    "shipped_model",
    "shipped_model_names",
    "shipped_model_text",
    "stage_at",
    "stage_counts",
    "tick",
    "transitions_between",
    "update_lifecycle",
]
