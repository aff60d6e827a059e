"""An approver edits the split in the admin, reads the confirmation, and applies it."""

import pytest

from registry.models import TrafficSplit
from registry.tests.ab_support import live_fixture, log  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_approver_edits_the_split_with_a_confirmation(live, approver, login, page):
    champion, challenger = live
    for i in range(200):
        log(champion, "champion", decision=False, label=None, entity=f"laptop-{i}")
    login(approver)
    page.goto("/admin/registry/trafficsplit/")
    page.click("[data-testid=edit-threat]")
    page.select_option("select[name=challenger]", str(challenger.pk))
    page.fill("input[name=challenger_percentage]", "15")
    page.fill("textarea[name=hypothesis]", "1.1.0 keeps precision without the proxy")
    page.click("[data-testid=preview]")
    moved = page.text_content("[data-testid=entities-moved]")
    assert "200" in moved and "move into the challenger" in moved
    assert "85.00 %" in page.text_content("[data-testid=split-change]")
    assert not TrafficSplit.objects.exists()
    page.click("[data-testid=confirm]")
    page.wait_for_selector("[data-testid=live-split]")
    assert page.text_content("[data-testid=challenger-share]").strip() == "15.00"
    assert "keeps precision" in page.text_content("[data-testid=experiment]")
    split = TrafficSplit.objects.get()
    assert (split.challenger_id, split.challenger_bp) == (challenger.pk, 1500)
