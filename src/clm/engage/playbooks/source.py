"""Playbooks as YAML text, for an editor: parse with the line of every problem, and write a
stored definition back as YAML a person can edit (defaults left out).

``parse_playbook`` (service) takes a dict or text and names each problem by its path; this
module adds the line, as the stage model's loader does, so an editor can point at it.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from clm.engage.delivery.templates import check
from clm.engage.playbooks.schemas import PlaybookDefinition
from clm.engage.playbooks.yaml_edit import edit_yaml
from clm.errors import FieldError, ValidationError
from clm.lifecycle.loader import line_for, load_yaml_model

# The whole-playbook checks name a step id in their message ("step 'a' points at ..."): the
# line of that step is a better pointer than line 1.
_STEP_NAMED = re.compile(r"step '([^']+)'")


def parse_playbook_yaml(text: str) -> PlaybookDefinition:
    """A playbook from YAML text; a ``ValidationError`` whose every message starts with
    ``line N:`` (all schema problems at once, then template problems) otherwise."""
    try:
        definition, lines = load_yaml_model(PlaybookDefinition, text, "playbook")
    except ValidationError as bad:
        raise ValidationError(bad.message, _point_at_steps(list(bad.errors), text)) from None
    problems: list[FieldError] = []
    for i, step in enumerate(definition.steps):
        if step.content is None:
            continue
        try:
            check(step.content, ("steps", i, "content"))
        except ValidationError as bad:
            problems += [
                FieldError(e.loc, f"line {line_for(e.loc, lines)}: {e.message}", e.type)
                for e in bad.errors
            ]
    if problems:
        raise ValidationError("Invalid playbook", problems)
    return definition


def _point_at_steps(errors: list[FieldError], text: str) -> list[FieldError]:
    """Errors about the whole playbook (``line 1:``) moved to the line of the step they name,
    when the text has one (``- id: <step>``)."""
    out = []
    for error in errors:
        named = _STEP_NAMED.search(error.message)
        if error.loc == () and error.message.startswith("line 1:") and named:
            at = _step_line(text, named.group(1))
            if at is not None:
                error = FieldError((), f"line {at}:{error.message[len('line 1:') :]}", error.type)
        # pydantic's "Value error, " says nothing to a person editing YAML
        out.append(
            FieldError(error.loc, error.message.replace(": Value error, ", ": "), error.type)
        )
    return out


def _step_line(text: str, step_id: str) -> int | None:
    pattern = re.compile(rf"^\s*-?\s*id:\s*['\"]?{re.escape(step_id)}['\"]?\s*(#.*)?$")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def playbook_yaml(definition: dict[str, Any]) -> str:
    """A stored definition as YAML in the order people write it, without the defaults (a
    send step would otherwise list every wait, branch and split field as empty)."""
    parsed = PlaybookDefinition.model_validate(definition)
    data = parsed.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    # exclude_defaults drops a send step's default channel and a trigger's nested defaults:
    # both are still the same playbook when read back, which the round-trip test checks.
    for step in data["steps"]:  # ``days: 3``, as people write it, not ``days: 3.0``
        for unit in ("days", "hours"):
            if isinstance(step.get(unit), float) and step[unit].is_integer():
                step[unit] = int(step[unit])
    return yaml.dump(data, Dumper=_Indented, sort_keys=False, allow_unicode=True, width=100)


_ORDER = ("name", "description", "trigger", "holdout", "reentry", "goal", "steps")


def draft_of(text: str) -> dict[str, Any] | None:
    """The YAML as plain data when it is a mapping, mistakes and all (what a form editor
    shows), else None (text that is not YAML, or not a mapping)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def draft_yaml(draft: dict[str, Any], text: str | None = None) -> str:
    """A draft (perhaps with mistakes: the check names them by line) as YAML: what a form
    editor writes into the text. Written into ``text`` (the YAML the form was editing) when it
    is a mapping, so the person's comments and layout stay; else afresh, in the order people
    write a playbook."""
    if text is not None:
        edited = edit_yaml(text, draft, _place)
        if edited is not None:
            return edited
    ordered = {k: draft[k] for k in _ORDER if k in draft}
    ordered.update({k: v for k, v in draft.items() if k not in ordered})
    return yaml.dump(ordered, Dumper=_Indented, sort_keys=False, allow_unicode=True, width=100)


def _place(keys: list[str], key: str) -> int:
    """Where a new top-level key goes: after the keys that come before it in ``_ORDER``."""
    if key not in _ORDER:
        return len(keys)
    before = set(_ORDER[: _ORDER.index(key)])
    return max((i + 1 for i, k in enumerate(keys) if k in before), default=0)


class _Indented(yaml.SafeDumper):
    """Lists indented under their key (``steps:`` then ``  - id: …``), as people write them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)
