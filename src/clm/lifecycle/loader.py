"""Reading stage models and scorecards from YAML, refusing bad ones with the line at fault.

``load_stage_model(text)`` returns a compiled, checked model or raises
``clm.errors.ValidationError`` whose errors each carry the path (``loc``) and a message that
starts with ``line N:``. The shipped models live in ``data/models/*.yaml``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import pydantic
import yaml

from clm.errors import FieldError, ValidationError
from clm.lifecycle.compiled import CompiledModel, compile_model
from clm.lifecycle.definitions import Scorecard, StageModel
from clm.lifecycle.features import DefinitionError
from clm.lifecycle.typing_rules import did_you_mean

Loc = tuple[str | int, ...]
_KEY = "\x00key"  # marks a key's own line in the line map (a value may start below its key)
M = TypeVar("M", bound=pydantic.BaseModel)


def _with_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    """Plain Python data from a YAML node, recording each value's 1-based line."""
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            lines[(_KEY, *loc, key)] = key_node.start_mark.line + 1  # where the key itself is
            result[key] = _with_lines(value_node, (*loc, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_with_lines(item, (*loc, i), lines) for i, item in enumerate(node.value)]
    value = yaml.safe_load(yaml.serialize(node))
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        lines[loc] += 1  # a block scalar's text starts below its indicator
    return value


def parse_yaml(text: str) -> tuple[Any, dict[Loc, int]]:
    lines: dict[Loc, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError(
            "The file is not valid YAML", [FieldError((), f"line {line}: {problem}", "yaml")]
        ) from None
    if root is None:
        raise ValidationError("The file is empty", [FieldError((), "line 1: empty document")])
    return _with_lines(root, (), lines), lines


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int:
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1)


def line_for(loc: Loc, lines: dict[Loc, int]) -> int:
    """The YAML line of ``loc`` (or of its nearest parent that has one), for messages."""
    return _line_for(loc, lines)


def load_yaml_model(cls: type[M], text: str, what: str) -> tuple[M, dict[Loc, int]]:
    """A pydantic model from YAML text, and the line of each value; a ``ValidationError``
    whose every message starts with ``line N:`` (all problems at once) otherwise."""
    data, lines = parse_yaml(text)
    return _validate(cls, data, lines, what), lines


def _validate(cls: type[M], data: Any, lines: dict[Loc, int], what: str) -> M:
    """Every schema problem at once, each with its line; a misspelt key is named with the
    key it most likely meant."""
    try:
        return cls.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = tuple(error["loc"])
            text = error["msg"]
            if error["type"] == "extra_forbidden" and loc:
                allowed = _keys_at(cls, loc[:-1])
                hint = did_you_mean(str(loc[-1]), allowed)
                text = f"unknown key '{loc[-1]}'{hint}" + (
                    f" (allowed: {', '.join(sorted(allowed))})" if not hint and allowed else ""
                )
            line = lines.get((_KEY, *loc)) if error["type"] == "extra_forbidden" else None
            message = f"line {line or _line_for(loc, lines)}: {text}"
            errors.append(FieldError(loc, message, error["type"]))
        raise ValidationError(f"Invalid {what}", errors) from None


def _keys_at(cls: type[pydantic.BaseModel], loc: Loc) -> list[str]:
    """The keys the model at ``loc`` (inside ``cls``) accepts, by their YAML names."""
    current: Any = cls
    for part in loc:
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
            if field is None:
                return []
            current = field.annotation
        else:  # a list or a mapping of models: step into the item type
            args = [a for a in get_args(current) if a is not type(None)]
            current = args[-1] if args else None
        while get_origin(current) in (Union, UnionType):
            current = next(a for a in get_args(current) if a is not type(None))
    if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _compile_or_raise(
    compile_fn: Callable[[M], Any], definition: M, lines: dict[Loc, int], what: str
) -> Any:
    try:
        return compile_fn(definition)
    except DefinitionError as exc:
        errors = []
        for problem in exc.problems:
            line = _line_for(_yaml_loc(problem.loc), lines) + problem.line - 1
            errors.append(FieldError(problem.loc, f"line {line}: {problem.message}"))
        raise ValidationError(f"Invalid {what}", errors) from None


def _yaml_loc(loc: Loc) -> Loc:
    # Lapse sources are written 'from' in YAML; features are compiled under their own name.
    return tuple("from" if part == "source" else part for part in loc)


def load_stage_model(text: str) -> CompiledModel:
    """A checked stage model from YAML text; ValidationError names each bad line, all at once:
    when only unknown keys spoil the schema, the rules are still checked (without those keys)
    and their problems listed beside the keys'."""
    data, lines = parse_yaml(text)
    try:
        model = _validate(StageModel, data, lines, "stage model")
    except ValidationError as schema:
        if any(e.type != "extra_forbidden" for e in schema.errors):
            raise
        try:
            _compile_or_raise(
                compile_model,
                StageModel.model_validate(_known_keys_only(StageModel, data)),
                lines,
                "stage model",
            )
        except ValidationError as rules:
            raise ValidationError(schema.message, [*schema.errors, *rules.errors]) from None
        raise
    compiled: CompiledModel = _compile_or_raise(compile_model, model, lines, "stage model")
    return compiled


def _known_keys_only(kind: Any, data: Any) -> Any:
    """``data`` without the keys the model ``kind`` (or the models inside it) does not know."""
    while get_origin(kind) in (Union, UnionType):
        kind = next(a for a in get_args(kind) if a is not type(None))
    if isinstance(kind, type) and issubclass(kind, pydantic.BaseModel) and isinstance(data, dict):
        fields = {f.alias or n: f for n, f in kind.model_fields.items()}
        fields.update(kind.model_fields)
        return {
            k: _known_keys_only(fields[k].annotation, v) for k, v in data.items() if k in fields
        }
    args = [a for a in get_args(kind) if a is not type(None)]
    if isinstance(data, list) and args:
        return [_known_keys_only(args[-1], item) for item in data]
    if isinstance(data, dict) and len(args) == 2:
        return {k: _known_keys_only(args[1], v) for k, v in data.items()}
    return data


def load_stage_model_file(path: str | Path) -> CompiledModel:
    return load_stage_model(Path(path).read_text())


def load_scorecard(text: str) -> Any:
    """A checked health scorecard (``CompiledScorecard``) from YAML text."""
    from clm.lifecycle.health import compile_scorecard

    data, lines = parse_yaml(text)
    card = _validate(Scorecard, data, lines, "scorecard")
    return _compile_or_raise(compile_scorecard, card, lines, "scorecard")


def _data_dir() -> Any:
    return resources.files("clm.lifecycle").joinpath("data")


def shipped_model_names() -> list[str]:
    """The stage models CLM ships: classic, four_stage, seven_stage, b2b_subscription."""
    folder = _data_dir().joinpath("models")
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def shipped_model_text(name: str) -> str:
    folder = _data_dir().joinpath("models")
    if name not in shipped_model_names():
        raise ValidationError(
            f"No shipped stage model {name!r}",
            [FieldError(("name",), f"choose one of: {', '.join(shipped_model_names())}")],
        )
    return str(folder.joinpath(f"{name}.yaml").read_text())


@cache
def shipped_model(name: str = "classic") -> CompiledModel:
    return load_stage_model(shipped_model_text(name))


def default_scorecard_text() -> str:
    return str(_data_dir().joinpath("scorecards/default.yaml").read_text())


# The default scorecards shipped before this one, by the SHA-256 of their text (the two since
# silence became evidence; older ones had other factors). A workspace installs the default once
# and keeps that text, so one that never edited it would show the old encoding-note labels
# ("stage (exit stage: 0)") forever. Read-time, such an untouched text speaks the current
# default's words; its weights, thresholds and stored row stay as they are, and a scorecard
# anyone edited (any other text) is never touched.
_FORMER_DEFAULTS = frozenset({
    "e471cf53ee02c0f5434f95fb3d6cf7f431904bc522e229ab8f07c25d4a70a35d",  # first, 2026-12-06
    "a38ff2195f53fbf3983f78d126031c847b4300da940796866355a8e477ecc674",  # CDNOW weights
})  # fmt: skip
_CURRENT_WORDS = {
    "days since last purchase": "Days since last purchase",
    "silence, in their usual gaps between purchases": "Silence against their buying rhythm",
    "purchases, last 365 days": "Purchases in the last 365 days",
    "engagement vs own 6-month average (none in 6 months: 0)":
        "Engagement against their 6-month average",
    "P(alive), repeat buyers": "Chance they buy again (repeat buyers)",
    "failed payments, 90 days": "Failed payments in 90 days",
    "downgrades, 90 days": "Downgrades in 90 days",
    "stage (exit stage: 0)": "Stage",
    "Win back: they have left (exit stage).": "Win back: they have churned.",
    "last NPS score": "Last NPS score",
    "last CSAT score": "Last CSAT score",
    "survey comment sentiment": "Tone of their survey comment",
    "open support tickets": "Open support tickets",
    "complaints, 90 days": "Complaints in 90 days",
    "refunds, 90 days": "Refunds in 90 days",
    "frontline rating (half weight every 90 days)": "Frontline rating",
}  # fmt: skip


def in_current_words(source: str) -> str:
    """A scorecard text as it reads today: an untouched former default with the current
    default's factor labels and actions, any other text unchanged."""
    if hashlib.sha256(source.encode()).hexdigest() not in _FORMER_DEFAULTS:
        return source
    for old, new in _CURRENT_WORDS.items():
        source = source.replace(f'"{old}"', f'"{new}"')
    return source
