"""Stage model validation as a person writing YAML needs it: a misspelt key is named with the
key it meant, every problem comes at once, and a rule that lets no later stage win is flagged.
(Before: a misspelt key said only "Extra inputs are not permitted", and only a literal
``true`` rule was seen to shadow the stages after it.)"""

from __future__ import annotations

import pytest

from clm.errors import ValidationError
from clm.lifecycle.loader import load_stage_model


def _errors(text: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_stage_model(text)
    return [e.message for e in caught.value.errors]


def test_misspelt_keys_are_named_with_what_they_meant_all_at_once() -> None:
    text = """\
name: shop
stags: []
stages:
  - name: visitor
    initial: true
  - name: buyer
    rul: purchase_count >= 1
lapse:
  - {from: buyer, to: visitor, when: days_since_last_purchase >= 30}
"""
    assert sorted(_errors(text)) == [
        "line 2: unknown key 'stags'; did you mean 'stages'?",
        "line 6: a stage needs an entry rule",  # what the misspelt 'rul' leaves the stage
        "line 7: unknown key 'rul'; did you mean 'rule'?",
        "line 8: unknown key 'lapse'; did you mean 'lapses'?",
    ]


def test_rule_problems_come_with_the_key_problems_in_one_round() -> None:
    text = """\
name: shop
stages:
  - name: visitor
    initial: true
    descripton: first touch
  - name: buyer
    rule: purchse_count >= 1
"""
    assert _errors(text) == [
        "line 5: unknown key 'descripton'; did you mean 'description'?",
        "line 7: unknown feature 'purchse_count'; did you mean 'purchase_count'?",
    ]


def test_a_key_with_no_near_miss_lists_the_allowed_ones() -> None:
    text = """\
name: shop
stages:
  - name: visitor
    initial: true
    colour: blue
"""
    [message] = _errors(text)
    assert message.startswith("line 5: unknown key 'colour' (allowed: ")
    assert "description" in message and "initial" in message


def test_every_unknown_feature_is_listed_with_a_suggestion() -> None:
    text = """\
name: shop
stages:
  - name: visitor
    initial: true
  - name: buyer
    rule: purchse_count >= 1
  - name: fan
    rule: purchase_count >= 3 and is_advocat
"""
    assert _errors(text) == [
        "line 6: unknown feature 'purchse_count'; did you mean 'purchase_count'?",
        "line 8: unknown feature 'is_advocat'; did you mean 'is_advocate'?",
    ]


def test_a_rule_that_is_always_true_is_flagged_with_the_stages_it_shadows() -> None:
    # purchase_count is a count: never unknown, never below 0, so ">= 0" holds for everyone,
    # and 'everyone' (tried first: last in the funnel) wins over 'fan' and 'buyer' for good.
    text = """\
name: shop
stages:
  - name: visitor
    initial: true
  - name: buyer
    rule: purchase_count >= 1
  - name: fan
    rule: purchase_count >= 3
  - name: everyone
    rule: purchase_count >= 0 or identified
"""
    errors = _errors(text)
    assert errors[0] == (
        "line 10: rule is always true, so no stage after it in precedence can ever win (fan, buyer)"
    )
    assert sorted(errors[1:]) == [
        "line 6: rule can never fire: stage 'everyone' comes first in precedence and its rule "
        "is always true",
        "line 8: rule can never fire: stage 'everyone' comes first in precedence and its rule "
        "is always true",
    ]


@pytest.mark.parametrize(
    "rule", ["purchase_count >= 1", "purchase_count > 0", "days_since_last_purchase >= 0"]
)
def test_rules_that_can_be_false_are_not_flagged(rule: str) -> None:
    # A count above 0 can be false; a days_since feature is unknown before the first purchase.
    load_stage_model(
        f"""\
name: shop
stages:
  - name: visitor
    initial: true
  - name: buyer
    rule: purchase_count >= 1
  - name: late
    rule: {rule}
"""
    )
