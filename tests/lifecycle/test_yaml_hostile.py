"""Generated YAML against the stage-model and playbook loaders: any text is a model or a
``ValidationError`` with reasons, never another exception (which the API would answer 500)."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from clm.errors import ClmError
from clm.lifecycle.loader import load_stage_model

keys = st.sampled_from(
    ["stages", "features", "rules", "name", "when", "all", "any", "days", "type", "event",
     "where", "version", "order", "terminal", "since", "count", "sum", "first", "x"]
)  # fmt: skip
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from([".inf", "-.nan", "1e400", "\x00"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.slow
@seed(1614)
@settings(max_examples=150, deadline=None, database=None)
@given(document=st.dictionaries(keys, values, max_size=5))
def test_a_stage_model_loads_or_is_refused_with_reasons(document: dict[str, object]) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    try:
        load_stage_model(text)
    except ClmError as exc:
        assert exc.status_code == 422 and str(exc)


@pytest.mark.slow
@seed(1615)
@settings(max_examples=150, deadline=None, database=None)
@given(
    document=st.dictionaries(
        st.sampled_from(["name", "trigger", "steps", "goal", "type", "id", "days", "x"]),
        values,
        max_size=5,
    )
)
def test_a_playbook_parses_or_is_refused_with_reasons(document: dict[str, object]) -> None:
    from clm.engage.playbooks.service import parse_playbook

    try:
        parse_playbook(yaml.safe_dump(document, allow_unicode=True))
    except ClmError as exc:
        assert exc.status_code == 422 and str(exc)
