"""Attribution on the scenario (worked out by hand below), on a three-touch journey, and
property tests of the models' sums."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from clm.analytics import (
    AttributionQuery,
    attribution,
    markov_attribution,
    markov_credits,
    parse_query,
)
from clm.analytics.attribution_models import CONVERSION, NULL, START, shapley_values
from clm.analytics.source import report_source
from clm.store.engine import Database
from tests.analytics.conftest import Loaded
from tests.analytics.logs import event, load, write_history
from tests.analytics.scenario import SINCE, UNTIL

RULES = ("first_touch", "last_touch", "linear", "time_decay", "position_based", "markov")


def test_scenario_lead_to_trial(scenario: Loaded) -> None:
    """Lead stays in the period: a, b, e moved to trial after one touch each (a email 01-05,
    b social 01-07, e email 03-15); c moved to paying with its only touch 33 days earlier
    (outside the 30-day lookback: direct); d never moved and has no touch (direct)."""
    with report_source(scenario.db, scenario.workspace_id) as source:
        report = attribution(source, parse_query(AttributionQuery, {"since": SINCE,
                                                                    "until": UNTIL}))  # fmt: skip
    pairs = {(p.from_stage, p.to_stage): p for p in report.pairs}
    trial = pairs[("lead", "trial")]
    assert (trial.transitions, trial.journeys) == (3, 5)
    credit = {c.value: c for c in trial.channels}
    for rule in ("first_touch", "last_touch", "linear", "time_decay", "position_based"):
        assert (getattr(credit["email"], rule), getattr(credit["social"], rule)) == (2.0, 1.0)
    # Markov: P(conv) = 2/5 (email) + 1/5 (social) = 0.6; without email 0.2, without social 0.4
    assert credit["email"].removal_effect == round(1 - 0.2 / 0.6, 6)
    assert credit["social"].removal_effect == round(1 - 0.4 / 0.6, 6)
    assert (credit["email"].markov, credit["social"].markov) == (2.0, 1.0)
    assert (credit["email"].shapley, credit["social"].shapley) == (2.0, 1.0)
    # the direct journeys (c and d) never reached trial: their conversion rate is 0
    assert (credit["(direct)"].journeys, credit["(direct)"].conversion_rate) == (2, 0.0)
    paying = pairs[("lead", "paying")]
    assert paying.transitions == 1
    direct = {c.value: c for c in paying.channels}["(direct)"]
    assert (direct.first_touch, direct.markov, direct.removal_effect) == (1.0, 1.0, 1.0)


def test_markov_alone_gives_the_report_s_markov_credits(scenario: Loaded) -> None:
    """``markov_attribution`` (what the benchmark times apart) skips the other models only."""
    query = parse_query(AttributionQuery, {"since": SINCE, "until": UNTIL})
    with report_source(scenario.db, scenario.workspace_id) as source:
        alone = markov_attribution(source, query)
        report = attribution(source, query)
    rounded = {pair: {c: round(v, 6) + 0.0 for c, v in credits.items()}
               for pair, credits in alone.items()}  # fmt: skip
    # as worked out above; d's direct journey never converts, so (direct) earns nothing
    assert rounded[("lead", "trial")] == {"(direct)": 0.0, "email": 2.0, "social": 1.0}
    assert rounded == {
        (p.from_stage, p.to_stage): {c.value: c.markov for c in p.channels} for p in report.pairs
    }


def test_three_touch_journey(db: Database) -> None:
    """m: search on day 0, social on day 7, email on day 14, then lead -> trial on day 14."""
    messages = [
        event("m", "2024-01-01", "Ad Clicked", "m1", channel="search"),
        event("m", "2024-01-08", "Ad Clicked", "m2", channel="social"),
        event("m", "2024-01-15", "Email Clicked", "m3", channel="email"),
    ]
    workspace_id, customers, definition_id = load(db, messages)
    moves = [("m", "2024-01-01", None, "lead"), ("m", "2024-01-15", "lead", "trial")]
    write_history(db, workspace_id, definition_id, customers, moves)
    with report_source(db, workspace_id) as source:
        params = {"since": SINCE, "until": UNTIL, "from_stage": "lead", "half_life_days": 7}
        query = parse_query(AttributionQuery, params)
        report = attribution(source, query)
    (pair,) = report.pairs
    credit = {c.value: c for c in pair.channels}
    assert (credit["search"].first_touch, credit["email"].last_touch) == (1.0, 1.0)
    assert credit["social"].linear == round(1 / 3, 6)
    # weights 2^(-14/7), 2^(-7/7), 2^0 = 0.25, 0.5, 1 of 1.75
    assert credit["search"].time_decay == round(0.25 / 1.75, 6)
    assert credit["email"].time_decay == round(1 / 1.75, 6)
    assert (credit["search"].position_based, credit["social"].position_based) == (0.4, 0.2)
    # one converting path through all three: removing any one breaks it
    assert {c.removal_effect for c in pair.channels} == {1.0}
    assert {c.shapley for c in pair.channels} == {round(1 / 3, 6)}


def test_journeys_without_any_touchpoint_are_all_direct(sqlite_db: Database) -> None:
    """No journey has a touchpoint value (none has a channel): everything goes to direct,
    Shapley included (this used to fail building an empty CASE)."""
    messages = [event("m", "2024-01-05", "Order Completed", "m1", revenue=5)]
    workspace_id, customers, definition_id = load(sqlite_db, messages)
    moves = [("m", "2024-01-05", None, "lead"), ("m", "2024-01-06", "lead", "paying")]
    write_history(sqlite_db, workspace_id, definition_id, customers, moves)
    with report_source(sqlite_db, workspace_id) as source:
        report = attribution(source, parse_query(AttributionQuery, {"since": SINCE,
                                                                    "until": UNTIL}))  # fmt: skip
    (pair,) = report.pairs
    (direct,) = pair.channels
    assert (direct.value, pair.transitions, pair.shapley_available) == ("(direct)", 1, True)
    assert [getattr(direct, rule) for rule in (*RULES, "shapley")] == [1.0] * (len(RULES) + 1)


def test_type_dimension_and_to_stage_filter(scenario: Loaded) -> None:
    with report_source(scenario.db, scenario.workspace_id) as source:
        query = parse_query(AttributionQuery, {"since": SINCE, "until": UNTIL, "to_stage": "trial",
                                               "dimension": "type"})  # fmt: skip
        report = attribution(source, query)
    assert {(p.from_stage, p.to_stage) for p in report.pairs} == {("lead", "trial")}
    credit = {c.value: c.last_touch for c in report.pairs[0].channels}
    assert credit == {"Page Viewed": 1.0, "Signed Up": 2.0, "Order Completed": 0.0,
                      "(direct)": 0.0} or sum(credit.values()) == 3.0  # fmt: skip


def test_credits_sum_to_transitions(scenario: Loaded) -> None:
    with report_source(scenario.db, scenario.workspace_id) as source:
        report = attribution(source, parse_query(AttributionQuery, {"lookback_days": 60}))
    for pair in report.pairs:
        for rule in RULES:
            total = sum(getattr(c, rule) for c in pair.channels)
            assert math.isclose(total, pair.transitions, abs_tol=1e-5), (pair, rule)
        assert math.isclose(sum(c.shapley or 0 for c in pair.channels), pair.transitions,
                            abs_tol=1e-5)  # fmt: skip


paths = st.lists(
    st.tuples(st.lists(st.sampled_from("abcde"), min_size=1, max_size=5), st.booleans()),
    min_size=1, max_size=30,
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(paths)
def test_markov_credits_sum_to_conversions(journeys: list[tuple[list[str], bool]]) -> None:
    counts: dict[tuple[str, str], float] = {}
    for path, converted in journeys:
        states = [START, *path, CONVERSION if converted else NULL]
        for pair in itertools.pairwise(states):
            counts[pair] = counts.get(pair, 0) + 1
    conversions = sum(1 for _, converted in journeys if converted)
    credits, effects = markov_credits(counts, conversions, sorted({c for p, _ in journeys
                                                                   for c in p}))  # fmt: skip
    assert all(-1e-9 <= e <= 1 + 1e-9 for e in effects.values())
    if any(e > 0 for e in effects.values()):
        assert math.isclose(sum(credits.values()), conversions, abs_tol=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.frozensets(st.sampled_from("abcdef"), min_size=1),
                       st.integers(0, 20), max_size=12))  # fmt: skip
def test_shapley_is_efficient_and_matches_the_closed_form(sets: dict[frozenset[str], int]) -> None:
    values = shapley_values(sets)
    assert math.isclose(sum(values.values()), sum(sets.values()), abs_tol=1e-6)
    for channel, value in values.items():  # each set's conversions split evenly in it
        expected = sum(n / len(s) for s, n in sets.items() if channel in s)
        assert math.isclose(value, expected, abs_tol=1e-6)
