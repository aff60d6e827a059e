import pytest

from registry import services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_approver_reviews_the_evidence_and_approves_in_the_admin(
    staged, ml_engineer, approver, login, page
):
    version = staged()
    request = services.approval_request_create(version=version, actor=ml_engineer)
    login(approver)
    page.goto("/admin/registry/approvalrequest/")
    page.click(f"a[href$='/approvalrequest/{request.pk}/change/']")
    # the click navigates: read the page only once the evidence has rendered
    page.wait_for_selector("[data-testid=policy-checks]")
    assert "auc" in page.text_content("body")
    assert page.locator("[data-testid=policy-checks] li").count() >= 1
    page.fill("textarea[name=notes]", "Evidence reviewed")
    page.click("[data-testid=approve]")
    page.wait_for_selector(".messagelist .success")
    assert "approved" in page.text_content(".messagelist")
    request.refresh_from_db()
    assert request.status == "approved"
