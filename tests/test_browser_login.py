import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_auditor_logs_in_and_sees_the_auditor_navigation(auditor, login, page):
    login(auditor)
    nav = page.locator("nav[aria-label=Main]")
    assert nav.get_by_role("link", name="Audit trail").is_visible()
    assert nav.get_by_role("link", name="Fairness").is_visible()
    assert nav.get_by_role("link", name="Admin").count() == 0
    assert "Auditor" in page.text_content("[data-testid=current-user]")
    nav.get_by_role("link", name="Audit trail").click()
    page.wait_for_selector("h1:has-text('Audit trail')")


def test_a_wrong_password_is_refused(analyst, page):
    page.goto("/accounts/login/")
    page.fill("#id_username", analyst.username)
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector(".error")
    assert page.locator(".error").is_visible()
