"""Features: what rules see of a customer, compiled from their definitions.

The built-in features (``data/features.yaml``) cover first/last seen, purchases and revenue,
days since activity, engagement by window and channel, NPS/CSAT, referrals, tickets, the
subscription status and P(alive); a model or scorecard may add its own or replace any of them.
Only the features a definition uses, directly or through others, are computed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from clm.lifecycle.definitions import FeatureDefinition
from clm.lifecycle.expressions import (
    Compare,
    ExpressionError,
    Lit,
    Name,
    Node,
    Type,
    children,
    names,
    parse,
)
from clm.lifecycle.typing_rules import EVENT_FIELDS, check

DAY = 86_400
AGGREGATES = ("count", "sum", "exists", "first_ts", "last_ts", "last")


@dataclass(frozen=True)
class Problem:
    """A definition error at ``loc``; ``line`` is the line inside an expression (1-based)."""

    loc: tuple[str | int, ...]
    message: str
    line: int = 1


class DefinitionError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Feature:
    """A compiled feature. ``days`` features hold seconds since ``of``, compared in seconds."""

    name: str
    kind: str
    type: Type
    events: tuple[str, ...] = ()
    where: Node | None = None
    window: int | None = None  # seconds
    field: str | None = None
    of: str | None = None
    expr: Node | None = None


@dataclass
class FeatureSet:
    """The features a definition needs, in dependency order, and the instants they change."""

    features: dict[str, Feature] = field(default_factory=dict)
    deadlines: set[tuple[str, int]] = field(default_factory=set)  # (ts feature, seconds)

    @property
    def windows(self) -> dict[str, int]:
        return {f.name: f.window for f in self.features.values() if f.window}


@cache
def builtin_definitions() -> dict[str, FeatureDefinition]:
    text = resources.files("clm.lifecycle").joinpath("data/features.yaml").read_text()
    raw: dict[str, Any] = yaml.safe_load(text)
    return {key: FeatureDefinition.model_validate(value) for key, value in raw.items()}


def _type_of(definition: FeatureDefinition) -> Type:
    if definition.kind in ("count", "sum"):
        return "number"
    if definition.kind == "exists":
        return "bool"
    if definition.kind in ("first_ts", "last_ts"):
        return "timestamp"
    if definition.kind == "days_since":
        return "days"
    if definition.kind == "last":
        if definition.field in EVENT_FIELDS:
            return EVENT_FIELDS[definition.field]
        return definition.value_type
    return "number"  # expr: replaced by its checked type


def compile_features(
    wanted: set[str],
    custom: Mapping[str, FeatureDefinition],
    parameters: Mapping[str, Any],
    loc: tuple[str | int, ...] = ("features",),
) -> tuple[FeatureSet, dict[str, Type]]:
    """Compile the ``wanted`` features and their dependencies; raise DefinitionError."""
    definitions = {**builtin_definitions(), **custom}
    problems: list[Problem] = []
    scope: dict[str, Type] = {k: _type_of(v) for k, v in definitions.items()}
    scope.update({k: "string" if isinstance(v, str) else "number" for k, v in parameters.items()})
    order = _dependency_order(wanted, definitions, parameters, loc, problems)
    result = FeatureSet()
    for name in order:
        try:
            feature = _compile_one(name, definitions[name], scope, parameters)
        except ExpressionError as exc:
            problems.append(Problem((*loc, name), exc.message, exc.line))
            continue
        scope[name] = feature.type
        result.features[name] = feature
        if feature.expr is not None:
            result.deadlines |= deadlines_of(feature.expr, result.features)
    if problems:
        raise DefinitionError(problems)
    return result, scope


def _dependencies(definition: FeatureDefinition) -> set[str]:
    if definition.kind == "days_since":
        return {definition.of} if definition.of else set()
    if definition.kind == "expr" and definition.expr:
        try:
            return names(parse(definition.expr))
        except ExpressionError:
            return set()
    return set()


def _dependency_order(
    wanted: set[str],
    definitions: Mapping[str, FeatureDefinition],
    parameters: Mapping[str, Any],
    loc: tuple[str | int, ...],
    problems: list[Problem],
) -> list[str]:
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in parameters or state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = " -> ".join((*path[path.index(name) :], name))
            problems.append(Problem((*loc, name), f"cycle in feature definitions: {cycle}"))
            return
        if name not in definitions:
            return  # reported as unknown by the type checker
        state[name] = "active"
        for dependency in sorted(_dependencies(definitions[name])):
            visit(dependency, (*path, name))
        state[name] = "done"
        order.append(name)

    for name in sorted(wanted):
        visit(name, ())
    return order


def _compile_one(
    name: str, definition: FeatureDefinition, scope: Mapping[str, Type], params: Mapping[str, Any]
) -> Feature:
    kind = definition.kind
    events = (definition.event,) if isinstance(definition.event, str) else (definition.event or [])
    if definition.window_days and kind not in ("count", "sum", "exists"):
        raise ExpressionError("window_days applies to count, sum and exists only")
    where = None
    if definition.where:
        where = substitute(parse(definition.where), params)
        found = check(where, {**EVENT_FIELDS}, allow_props=True)
        if found not in ("bool", None):
            raise ExpressionError(f"type mismatch: 'where' must be true/false, got {found}")
    if kind in ("sum", "last"):
        _check_field(kind, definition)
    if kind == "days_since" and (definition.of is None or scope.get(definition.of) != "timestamp"):
        raise ExpressionError(
            f"days_since needs 'of': a first_ts/last_ts feature, got {definition.of!r}"
        )
    expr = None
    feature_type = _type_of(definition)
    if kind == "expr":
        if not definition.expr:
            raise ExpressionError("an expr feature needs 'expr'")
        expr = substitute(parse(definition.expr), params)
        feature_type = check(expr, scope) or "number"
        expr = seconds_for_days(expr, scope)
    window = definition.window_days * DAY if definition.window_days else None
    return Feature(
        name,
        kind,
        feature_type,
        tuple(events),
        where,
        window,
        definition.field,
        definition.of,
        expr,
    )


def _check_field(kind: str, definition: FeatureDefinition) -> None:
    target = definition.field
    if target is None:
        raise ExpressionError(f"a {kind} feature needs 'field' (revenue, properties.<key>, ...)")
    if target in EVENT_FIELDS or re.fullmatch(r"properties\.[A-Za-z_][A-Za-z0-9_]*", target):
        if kind == "sum" and EVENT_FIELDS.get(target, "number") != "number":
            raise ExpressionError(f"type mismatch: cannot sum the text field '{target}'")
        return
    raise ExpressionError(f"unknown event field '{target}'")


def substitute(node: Node, parameters: Mapping[str, Any]) -> Node:
    """Replace parameter names by their values."""
    if isinstance(node, Name) and node.name in parameters:
        return Lit(node.line, parameters[node.name])
    kids = children(node)
    if not kids:
        return node
    return _rebuild(node, tuple(substitute(k, parameters) for k in kids))


def seconds_for_days(node: Node, scope: Mapping[str, Type]) -> Node:
    """Rewrite ``days_feature >= 30`` as a comparison in seconds, exact on every engine."""
    if isinstance(node, Compare):
        for days, lit, flipped in ((node.left, node.right, False), (node.right, node.left, True)):
            if isinstance(days, Name) and scope.get(days.name) == "days":
                assert isinstance(lit, Lit) and isinstance(lit.value, int | float)
                seconds = Lit(lit.line, lit.value * DAY)
                pair = (seconds, days) if flipped else (days, seconds)
                return Compare(node.line, node.op, *pair)
        return node
    kids = children(node)
    if not kids:
        return node
    return _rebuild(node, tuple(seconds_for_days(k, scope) for k in kids))


def _rebuild(node: Node, kids: tuple[Node, ...]) -> Node:
    from dataclasses import fields, replace

    names_ = [f.name for f in fields(node) if f.name != "line"]
    if "operands" in names_:
        return replace(node, operands=kids)  # type: ignore[call-arg]
    if "args" in names_:
        return replace(node, args=kids)  # type: ignore[call-arg]
    if "operand" in names_:
        return replace(node, operand=kids[0])  # type: ignore[call-arg]
    return replace(node, left=kids[0], right=kids[1])  # type: ignore[call-arg]


def deadlines_of(node: Node, features: Mapping[str, Feature]) -> set[tuple[str, int]]:
    """The (timestamp feature, offset) pairs at which a days comparison can change its truth."""
    found: set[tuple[str, int]] = set()
    if isinstance(node, Compare):
        for days, lit, flipped in ((node.left, node.right, False), (node.right, node.left, True)):
            feature = features.get(days.name) if isinstance(days, Name) else None
            if feature is not None and feature.type == "days" and isinstance(lit, Lit):
                assert feature.of is not None and isinstance(lit.value, int | float)
                op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(node.op, node.op)
                found |= {
                    (feature.of, s) for s in _flip_points(op if flipped else node.op, lit.value)
                }
    for child in children(node):
        found |= deadlines_of(child, features)
    return found


def _flip_points(op: str, seconds: float) -> set[int]:
    """Offsets (in whole seconds after the reference) where ``elapsed OP seconds`` flips."""
    if op in (">=", "<"):
        return {math.ceil(seconds)}
    if op in (">", "<="):
        return {math.floor(seconds) + 1}
    return {math.ceil(seconds), math.floor(seconds) + 1}
