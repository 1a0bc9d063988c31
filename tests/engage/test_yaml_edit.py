"""A form's edit written into the person's YAML: only what changed moves; comments, key order,
quoting and indentation stay (each expected text below is written out by hand)."""

from __future__ import annotations

import copy

import pytest
import yaml

from clm.engage.playbooks.source import draft_yaml
from clm.engage.playbooks.yaml_edit import edit_yaml

TEXT = """\
# Top comment.
name: check-in   # its name
trigger:
    type: health_changed   # four-space mappings here
    to: at_risk
steps:
- id: note   # first
  type: send
  content:
      subject: 'Hi {{ first_name }}'
- id: call
  type: task   # a person
  title: Call
"""


def _data() -> dict[str, object]:
    return copy.deepcopy(yaml.safe_load(TEXT))


@pytest.mark.parametrize(
    "text",
    [
        TEXT,
        "a: 1\nb:\n  - x: 1\n    y: [1, 2]   # flow kept\n  - x: 2\n",
        "a: yes-ish\nb: {c: 1}\n",
    ],
)
def test_the_same_data_leaves_the_text_as_it_was(text: str) -> None:
    assert edit_yaml(text, yaml.safe_load(text)) == text


def test_a_changed_value_changes_that_value_only() -> None:
    data = _data()
    data["trigger"]["to"] = "unhappy"  # type: ignore[index]
    assert edit_yaml(TEXT, data) == TEXT.replace("to: at_risk", "to: unhappy")


def test_moved_steps_carry_their_comments_and_a_renamed_step_keeps_its_own() -> None:
    data = _data()
    steps = data["steps"]
    assert isinstance(steps, list)
    steps.reverse()
    steps[1]["id"] = "hello"  # ``note``, now second, renamed (its comment keeps its column)
    assert (
        edit_yaml(TEXT, data)
        == """\
# Top comment.
name: check-in   # its name
trigger:
    type: health_changed   # four-space mappings here
    to: at_risk
steps:
- id: call
  type: task   # a person
  title: Call
- id: hello  # first
  type: send
  content:
      subject: 'Hi {{ first_name }}'
"""
    )


def test_removed_and_added_keys_and_steps() -> None:
    data = _data()
    del data["trigger"]["to"]  # type: ignore[attr-defined]
    data["trigger"]["segment"] = "Lapsing"  # type: ignore[index]
    data["holdout"] = 0.1
    data["steps"] = data["steps"][:1]  # type: ignore[index]  # the form removes ``call``
    text = edit_yaml(TEXT, data)
    assert text is not None
    data["steps"].append({"id": "wait", "type": "wait", "days": 3})  # type: ignore[attr-defined]
    assert (
        edit_yaml(text, data)
        == """\
# Top comment.
name: check-in   # its name
trigger:
    type: health_changed   # four-space mappings here
    segment: Lapsing
steps:
- id: note   # first
  type: send
  content:
      subject: 'Hi {{ first_name }}'
- id: wait
  type: wait
  days: 3
holdout: 0.1
"""
    )
    # Both at once: the removed task's comment does not go to the new wait step.
    assert edit_yaml(TEXT, data) == edit_yaml(text, data)


def test_a_new_playbook_key_goes_where_people_write_it() -> None:
    data = _data()
    data["goal"] = {"event": "Order Completed", "within_days": 30}
    text = draft_yaml(data, TEXT)
    assert text.index("trigger:") < text.index("goal:") < text.index("steps:")
    assert "goal:\n    event: Order Completed\n    within_days: 30\nsteps:\n" in text
    assert yaml.safe_load(text) == data and text.count("#") == TEXT.count("#")


@pytest.mark.parametrize("text", ["- a\n", "a: [1\n", "just text\n", ""])
def test_text_that_is_not_a_mapping_is_not_edited(text: str) -> None:
    assert edit_yaml(text, {"name": "x"}) is None
    assert draft_yaml({"name": "x"}, text) == "name: x\n"  # written afresh instead
