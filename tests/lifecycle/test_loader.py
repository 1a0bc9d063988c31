"""Loading stage models: the shipped ones load, bad ones are refused naming the line."""

from __future__ import annotations

import pytest

from clm.errors import ValidationError
from clm.lifecycle.loader import load_stage_model, shipped_model, shipped_model_names
from tests.lifecycle.models import EVERYTHING

GOOD = """\
name: tiny
stages:
  - name: visitor
    initial: true
  - name: buyer
    rule: purchase_count >= 1
"""


def _errors(text: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_stage_model(text)
    return [e.message for e in caught.value.errors]


def test_shipped_models_load() -> None:
    assert shipped_model_names() == ["b2b_subscription", "classic", "four_stage", "seven_stage"]
    classic = shipped_model("classic")
    assert [s.name for s in classic.stages] == [
        "reach",
        "acquisition",
        "conversion",
        "retention",
        "loyalty",
        "churned",
    ]
    # Exit stages first, then from the end of the funnel back to the start.
    assert classic.precedence == (
        "churned",
        "loyalty",
        "retention",
        "conversion",
        "acquisition",
        "reach",
    )
    # 180 and 365 days after the last purchase, in seconds.
    assert classic.feature_set.deadlines == {
        ("last_purchase", 180 * 86_400),
        ("last_purchase", 365 * 86_400),
    }
    assert [s.name for s in shipped_model("b2b_subscription").stages] == [
        "lead",
        "trial",
        "customer",
        "expansion",
        "churned",
    ]
    assert len(shipped_model("four_stage").stages) == 4
    assert len(shipped_model("seven_stage").stages) == 7


def test_a_small_model_loads_and_only_needed_features_are_compiled() -> None:
    model = load_stage_model(GOOD)
    assert set(model.features) == {"purchase_count"}
    assert load_stage_model(EVERYTHING).feature_set.windows == {
        "big_orders_7d": 7 * 86_400,
        "email_30d": 30 * 86_400,
    }


def test_unknown_feature_names_the_line() -> None:
    assert _errors(GOOD.replace("purchase_count", "purchse_count")) == [
        "line 6: unknown feature 'purchse_count'; did you mean 'purchase_count'?"
    ]


def test_type_mismatch() -> None:
    assert _errors(GOOD.replace(">= 1", "== 'many'")) == ["line 6: type mismatch: number == string"]
    assert _errors(GOOD.replace("purchase_count >= 1", "purchase_count")) == [
        "line 6: type mismatch: a rule must be true/false, got number"
    ]


def test_no_initial_stage() -> None:
    assert _errors(GOOD.replace("    initial: true\n", "    rule: 'true'\n")) == [
        "line 3: no initial stage: mark the stage customers start in with 'initial: true'"
    ]


def test_cycle_in_lapses() -> None:
    text = GOOD + (
        "lapses:\n"
        "  - {from: buyer, to: visitor, when: days_since_last_purchase >= 5}\n"
        "  - {from: visitor, to: buyer, when: days_since_last_purchase >= 9}\n"
    )
    assert _errors(text) == ["line 8: cycle in lapses: buyer -> visitor -> buyer"]


def test_precedence_listing_a_stage_twice_is_a_cycle() -> None:
    text = GOOD + "precedence: [buyer, buyer]\n"
    assert _errors(text) == [
        "line 7: cycle in precedence: 'buyer' is listed twice, so it both wins over and loses "
        "to others"
    ]


def test_rules_that_can_never_fire() -> None:
    assert _errors(GOOD.replace(">= 1", "< 0")) == ["line 6: rule can never fire: it is never true"]
    contradiction = GOOD.replace(">= 1", ">= 5 and purchase_count < 3")
    assert _errors(contradiction) == ["line 6: rule can never fire: it is never true"]
    # Default precedence tries fan, then vip (always true), then buyer: buyer never fires.
    shadowed = GOOD + "  - name: vip\n    rule: 'true'\n  - name: fan\n    rule: is_advocate\n"
    assert _errors(shadowed) == [
        "line 8: rule is always true, so no stage after it in precedence can ever win (buyer)",
        "line 6: rule can never fire: stage 'vip' comes first in precedence and its rule is "
        "always true",
    ]


def test_days_since_must_be_compared_with_a_number() -> None:
    text = GOOD.replace("purchase_count >= 1", "days_since_last_purchase >= purchase_count")
    assert _errors(text) == ["line 6: a days_since feature can only be compared with a number"]


def test_schema_errors_and_bad_yaml_name_the_line() -> None:
    assert _errors(GOOD.replace("    rule:", "    rulez:")) == [
        "line 6: unknown key 'rulez'; did you mean 'rule'?",
        "line 5: a stage needs an entry rule",  # checked in the same round, without 'rulez'
    ]
    assert _errors("name: x\nstages: [\n") == [
        "line 3: expected the node content, but found '<stream end>'"
    ]


def test_syntax_error_in_a_multi_line_rule() -> None:
    text = GOOD.replace(
        "rule: purchase_count >= 1", "rule: |\n      purchase_count >= 1\n      and and"
    )
    assert _errors(text) == ["line 8: syntax error: invalid syntax"]
