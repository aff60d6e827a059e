import pytest

from fairness.services import fairness_audit_create, fairness_audit_execute_now

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_auditor_opens_an_audit_and_sees_the_chart(
    register_trained, biased_training, auditor, login, page
):
    version = register_trained(biased_training, model="threat-detector")
    audit = fairness_audit_create(version=version, enqueue=False)
    fairness_audit_execute_now(audit_id=audit.pk)
    login(auditor)
    page.goto("/fairness/")
    page.click(f"a[href='/fairness/audits/{audit.pk}/']")
    page.wait_for_selector(".js-plotly-plot")
    # Four panels, one bar per region in each.
    assert page.locator(".js-plotly-plot g.trace.bars").count() == 4
    assert page.locator(".js-plotly-plot g.trace.bars g.point").count() == 4 * 5
    assert "fail" in page.text_content("[data-testid=verdict] h2")
    assert "APAC: fpr impact ratio" in page.text_content("[data-testid=reasons]")
    page.click("text=Compliance report for 1.0.0")
    page.wait_for_selector("[data-testid=compliance-report]")
    assert "Compliance report: threat-detector 1.0.0" in page.text_content("h1")


HOSTILE_GROUP = '<a href="https://evil.example/login">EU</a>'


def test_a_group_name_holding_html_is_shown_as_text_not_a_link(
    register_trained, biased_training, auditor, login, page, monkeypatch
):
    """Plotly reads HTML in tick labels: a group name from an evaluation set must reach
    the chart escaped, and show as the literal text."""
    import numpy as np

    from fairness import services

    real = services._evaluation_data

    def hostile_groups(version, attributes):
        data = real(version, attributes)
        regions = data["sensitive"]["geo_region"].astype(object)
        regions[regions == "EU"] = HOSTILE_GROUP
        data["sensitive"]["geo_region"] = np.asarray(regions, dtype=str)
        return data

    monkeypatch.setattr(services, "_evaluation_data", hostile_groups)
    version = register_trained(biased_training, model="threat-detector")
    audit = fairness_audit_create(version=version, enqueue=False)
    fairness_audit_execute_now(audit_id=audit.pk)
    login(auditor)
    page.goto(f"/fairness/audits/{audit.pk}/")
    page.wait_for_selector(".js-plotly-plot g.xtick")
    assert page.locator(".js-plotly-plot a").count() == 0
    ticks = page.locator(".js-plotly-plot g.xtick text").all_text_contents()
    assert HOSTILE_GROUP in ticks, ticks
