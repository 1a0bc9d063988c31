"""A workspace that installed the default scorecard before its labels were rewritten for people
(2026-12-06) and never edited it keeps that text; it used to show "stage (exit stage: 0)" and
"P(alive), repeat buyers" until someone saved a new version. Read now, such an untouched former
default speaks the current default's words, its weights and stored row unchanged; a scorecard
someone edited keeps its own words. The two former texts are copies of the shipped files
(``git show aa3cc48:`` and ``0f3a635:src/clm/lifecycle/data/scorecards/default.yaml``)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from clm.lifecycle.catalog import get_definition, save_definition
from clm.lifecycle.loader import default_scorecard_text, load_scorecard
from clm.lifecycle.scorecard_edit import scorecard_public
from clm.store.engine import Database
from clm.store.models import LifecycleDefinition
from tests.conftest import make_tenant

FORMER = Path(__file__).parent / "data" / "former_scorecards"
CURRENT = load_scorecard(default_scorecard_text())
CURRENT_LABELS = {key: factor.label for key, factor in CURRENT.factors.items()}


def stored_text(db: Database, workspace_id: int) -> str:
    with db.session() as session:
        return str(
            session.scalar(
                select(LifecycleDefinition.source).where(
                    LifecycleDefinition.workspace_id == workspace_id,
                    LifecycleDefinition.kind == "health",
                )
            )
        )


def test_an_untouched_former_default_reads_in_todays_words(db: Database) -> None:
    # The one just before today's: the same scorecard but for its words.
    last = (FORMER / "default-0f3a635.yaml").read_text()
    shop = make_tenant(db, "shop").id
    save_definition(db, shop, "health", last)
    info, card, source = get_definition(db, shop, "health")
    assert (info.name, info.version) == ("default", 1)
    assert source == default_scorecard_text()
    shown = {f.key: f.label for f in scorecard_public(db, shop).factors}
    assert shown == CURRENT_LABELS and shown["stage"] == "Stage"
    assert card.factors["stage"].action == "Win back: they have churned."
    assert stored_text(db, shop) == last  # nothing rewritten

    # The first one: other weights, kept; only the words change.
    first = (FORMER / "default-aa3cc48.yaml").read_text()
    older = make_tenant(db, "older").id
    save_definition(db, older, "health", first)
    card = get_definition(db, older, "health")[1]
    assert {k: f.label for k, f in card.factors.items()} == CURRENT_LABELS
    assert card.weights == load_scorecard(first).weights
    assert (card.factors["recency"].weight, CURRENT.factors["recency"].weight) == (15, 20)
    assert stored_text(db, older) == first


def test_an_edited_former_default_keeps_its_own_words(db: Database) -> None:
    edited = (FORMER / "default-0f3a635.yaml").read_text().replace("weight: 40", "weight: 35")
    shop = make_tenant(db, "edited").id
    save_definition(db, shop, "health", edited)
    _, card, source = get_definition(db, shop, "health")
    assert source == edited
    assert card.factors["stage"].label == "stage (exit stage: 0)"
    assert card.factors["p_alive"].label == "P(alive), repeat buyers"
