"""Checking a stage model and compiling it into what the engines evaluate.

Every problem is collected (not only the first) with its location, so the loader can name the
YAML line: unknown features, type mismatches, no or several initial stages, unknown stages in
precedence or lapses, cycles among lapses or features, and rules that can never fire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clm.lifecycle.definitions import StageModel
from clm.lifecycle.expressions import ExpressionError, Lit, Node, names, parse
from clm.lifecycle.features import (
    DefinitionError,
    Feature,
    FeatureSet,
    Problem,
    compile_features,
    deadlines_of,
    seconds_for_days,
    substitute,
)
from clm.lifecycle.typing_rules import always_false, always_true, check

TRUE = Lit(1, True)


@dataclass(frozen=True)
class Stage:
    name: str
    index: int
    rule: Node
    initial: bool
    exit: bool


@dataclass(frozen=True)
class Lapse:
    name: str
    source: str
    target: str
    when: Node


@dataclass
class CompiledModel:
    """A checked stage model: stages, the order rules are tried, lapses and features."""

    name: str
    version: int
    stages: tuple[Stage, ...]
    precedence: tuple[str, ...]
    lapses: tuple[Lapse, ...]
    feature_set: FeatureSet
    definition: StageModel
    by_name: dict[str, Stage] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {s.name: s for s in self.stages}

    @property
    def features(self) -> dict[str, Feature]:
        return self.feature_set.features

    @property
    def initial(self) -> Stage:
        return next(s for s in self.stages if s.initial)

    def transition_kind(self, source: str | None, target: str) -> str:
        """entry | forward | skip | backward | exit | reactivation."""
        if source is None:
            return "entry"
        before, after = self.by_name[source], self.by_name[target]
        if before.exit and not after.exit:
            return "reactivation"
        if after.exit:
            return "exit"
        if after.index == before.index + 1:
            return "forward"
        return "skip" if after.index > before.index else "backward"


def compile_model(model: StageModel) -> CompiledModel:
    """Check ``model`` and compile it; raises DefinitionError listing every problem."""
    problems: list[Problem] = []
    stage_names = [s.name for s in model.stages]
    _check_stages(model, problems)
    rules: dict[int, Node] = {}
    for index, stage in enumerate(model.stages):
        if stage.initial:
            if stage.rule not in (None, "true"):
                problems.append(
                    Problem(("stages", index, "rule"), "the initial stage needs no rule")
                )
            continue
        if stage.rule is None:
            problems.append(Problem(("stages", index, "rule"), "a stage needs an entry rule"))
            continue
        node = _parse(stage.rule, ("stages", index, "rule"), model.parameters, problems)
        if node is not None:
            rules[index] = node
    lapse_nodes: dict[int, Node] = {}
    for index, lapse in enumerate(model.lapses):
        for key, value in (("from", lapse.source), ("to", lapse.to)):
            if value not in stage_names:
                problems.append(Problem(("lapses", index, key), f"unknown stage '{value}'"))
        node = _parse(lapse.when, ("lapses", index, "when"), model.parameters, problems)
        if node is not None:
            lapse_nodes[index] = node
    wanted = set().union(*(names(n) for n in (*rules.values(), *lapse_nodes.values())))
    try:
        feature_set, scope = compile_features(wanted, model.features, model.parameters)
    except DefinitionError as exc:
        raise DefinitionError(problems + exc.problems) from None
    for loc, node in [(("stages", i, "rule"), n) for i, n in rules.items()] + [
        (("lapses", i, "when"), n) for i, n in lapse_nodes.items()
    ]:
        try:
            kind = check(node, scope)
            if kind not in ("bool", None):
                problems.append(
                    Problem(loc, f"type mismatch: a rule must be true/false, got {kind}")
                )
        except ExpressionError as exc:
            problems.append(Problem(loc, exc.message, exc.line))
    precedence = _precedence(model, problems)
    _check_lapse_cycles(model, problems)
    if problems:
        raise DefinitionError(problems)
    _check_never_fires(model, rules, lapse_nodes, precedence, feature_set, problems)
    if problems:
        raise DefinitionError(problems)
    for node in (*rules.values(), *lapse_nodes.values()):
        feature_set.deadlines |= deadlines_of(seconds_for_days(node, scope), feature_set.features)
    stages = tuple(
        Stage(s.name, i, seconds_for_days(rules.get(i, TRUE), scope), s.initial, s.exit)
        for i, s in enumerate(model.stages)
    )
    lapses = tuple(
        Lapse(
            lapse.name or f"{lapse.source}_to_{lapse.to}",
            lapse.source,
            lapse.to,
            seconds_for_days(lapse_nodes[i], scope),
        )
        for i, lapse in enumerate(model.lapses)
    )
    return CompiledModel(model.name, model.version, stages, precedence, lapses, feature_set, model)


def _parse(
    text: str, loc: tuple[str | int, ...], params: Mapping[str, Any], problems: list[Problem]
) -> Node | None:
    try:
        return substitute(parse(text), params)
    except ExpressionError as exc:
        problems.append(Problem(loc, exc.message, exc.line))
        return None


def _check_stages(model: StageModel, problems: list[Problem]) -> None:
    seen: set[str] = set()
    for index, stage in enumerate(model.stages):
        if stage.name in seen:
            problems.append(Problem(("stages", index, "name"), f"duplicate stage '{stage.name}'"))
        seen.add(stage.name)
        if stage.initial and stage.exit:
            problems.append(Problem(("stages", index), "the initial stage cannot be an exit"))
    initial = [i for i, s in enumerate(model.stages) if s.initial]
    if not initial:
        problems.append(
            Problem(
                ("stages",),
                "no initial stage: mark the stage customers start in with 'initial: true'",
            )
        )
    for index in initial[1:]:
        problems.append(Problem(("stages", index, "initial"), "more than one initial stage"))


def _precedence(model: StageModel, problems: list[Problem]) -> tuple[str, ...]:
    stages = [s for s in model.stages if not s.initial]
    initial = [s.name for s in model.stages if s.initial]
    if model.precedence is None:
        ordered = [s.name for s in stages if s.exit] + [
            s.name for s in reversed(stages) if not s.exit
        ]
        return (*ordered, *initial)
    listed = [n for n in model.precedence if n not in initial]
    known = {s.name for s in stages}
    for index, name in enumerate(model.precedence):
        if name not in known and name not in initial:
            problems.append(Problem(("precedence", index), f"unknown stage '{name}'"))
        elif model.precedence.index(name) != index:
            problems.append(
                Problem(
                    ("precedence", index),
                    f"cycle in precedence: '{name}' is "
                    "listed twice, so it both wins over and loses to others",
                )
            )
    missing = sorted(known - set(listed))
    if missing:
        problems.append(Problem(("precedence",), f"precedence leaves out: {', '.join(missing)}"))
    return (*dict.fromkeys(listed), *initial)


def _check_lapse_cycles(model: StageModel, problems: list[Problem]) -> None:
    edges: dict[str, set[str]] = {}
    for lapse in model.lapses:
        if lapse.source == lapse.to:
            continue
        edges.setdefault(lapse.source, set()).add(lapse.to)
    for index, lapse in enumerate(model.lapses):
        path = _path(edges, lapse.to, lapse.source)
        if lapse.source == lapse.to or path:
            chain = " -> ".join([lapse.source, *(path or [lapse.to])])
            problems.append(Problem(("lapses", index), f"cycle in lapses: {chain}"))
            return


def _path(edges: Mapping[str, set[str]], start: str, goal: str) -> list[str] | None:
    stack: list[list[str]] = [[start]]
    seen: set[str] = set()
    while stack:
        path = stack.pop()
        if path[-1] == goal:
            return path
        if path[-1] in seen:
            continue
        seen.add(path[-1])
        stack.extend([*path, nxt] for nxt in sorted(edges.get(path[-1], ())))
    return None


def _check_never_fires(
    model: StageModel,
    rules: Mapping[int, Node],
    lapses: Mapping[int, Node],
    precedence: tuple[str, ...],
    features: FeatureSet,
    problems: list[Problem],
) -> None:
    bounds = {
        name: 0.0 for name, f in features.features.items() if f.kind in ("count", "days_since")
    }
    never_null = {name: 0.0 for name, f in features.features.items() if f.kind == "count"}
    initial = {s.name for s in model.stages if s.initial}
    index_of = {s.name: i for i, s in enumerate(model.stages)}
    shadowing: str | None = None
    for name in precedence:
        index = index_of[name]
        if model.stages[index].initial:
            continue
        loc = ("stages", index, "rule")
        if shadowing is not None:
            problems.append(
                Problem(
                    loc,
                    f"rule can never fire: stage '{shadowing}' comes first "
                    "in precedence and its rule is always true",
                )
            )
        elif always_false(rules[index], bounds):
            problems.append(Problem(loc, "rule can never fire: it is never true"))
        rule = rules[index]
        if shadowing is None and always_true(rule, never_null):
            shadowing = name
            later = [n for n in precedence[precedence.index(name) + 1 :] if n not in initial]
            if later:
                problems.append(
                    Problem(
                        loc,
                        "rule is always true, so no stage after it in precedence can ever win "
                        f"({', '.join(later)})",
                    )
                )
    for index, node in lapses.items():
        if always_false(node, bounds):
            problems.append(Problem(("lapses", index, "when"), "lapse can never fire"))
