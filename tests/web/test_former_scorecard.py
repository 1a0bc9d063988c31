"""The health scorecard page of a workspace that installed the default scorecard before its
labels were rewritten (and never edited it), in Debian's Chromium: the factors read in today's
words ("Stage", "Chance they buy again (repeat buyers)"), not the stored encoding notes, with
the workspace's own weights. The stored text is the former shipped file, as such a workspace
has it (tests/lifecycle/test_former_default_scorecard.py holds the rule)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from clm.accounts import Role
from clm.lifecycle.catalog import save_definition
from clm.store.engine import Database
from tests.accounts.conftest import add_user
from tests.conftest import make_tenant
from tests.lifecycle.test_former_default_scorecard import FORMER
from tests.web.browser import Shot, console_errors, sign_in
from tests.web.servers import serving

pytestmark = pytest.mark.slow


def test_the_scorecard_page_shows_todays_labels_for_an_untouched_former_default(
    db: Database, browser_page: Page, shot: Shot
) -> None:
    tenant = make_tenant(db, "shop")
    save_definition(db, tenant.id, "health", (FORMER / "default-aa3cc48.yaml").read_text())
    add_user(db, "owner@example.com", tenant.id, Role.OWNER)
    page = browser_page
    with serving(db) as url:
        sign_in(page, url + "/settings/health", "owner@example.com")
        factors = page.locator("#scorecard-factors")
        expect(factors.locator("tr[data-factor=stage] td").first).to_have_text("Stage (risk)")
        expect(factors.locator("tr[data-factor=p_alive] td").first).to_have_text(
            "Chance they buy again (repeat buyers) (risk)"
        )
        expect(factors).not_to_contain_text("exit stage: 0")
        # The workspace's own weights (recency 15 then, 20 in today's default).
        expect(page.locator("input[name=weight-recency]")).to_have_value("15")
        shot("settings-health-former-default")
        assert console_errors(page) == []
