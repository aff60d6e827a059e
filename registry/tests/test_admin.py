import pytest
from django.contrib.admin.models import LogEntry

from registry import services
from registry.models import ApprovalRequest

pytestmark = pytest.mark.django_db


def test_an_approver_approves_through_the_admin_and_it_is_logged(
    client, staged, ml_engineer, approver
):
    version = staged()
    request = services.approval_request_create(version=version, actor=ml_engineer)
    client.force_login(approver)
    page = client.get(f"/admin/registry/approvalrequest/{request.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Evidence shown to approvers" in html and 'data-testid="approve"' in html
    response = client.post(
        f"/admin/registry/approvalrequest/{request.pk}/decide/",
        {"decision": "approve", "notes": "meets policy"},
    )
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.status == "approved"
    assert LogEntry.objects.get(object_id=str(request.pk)).change_message == "approve: meets policy"


def test_a_rejection_through_the_admin(client, staged, ml_engineer, approver):
    version = staged()
    request = services.approval_request_create(version=version, actor=ml_engineer)
    client.force_login(approver)
    client.post(
        f"/admin/registry/approvalrequest/{request.pk}/decide/",
        {"decision": "reject", "notes": "precision regressed"},
    )
    assert ApprovalRequest.objects.get(pk=request.pk).status == "rejected"


def test_the_registrant_cannot_decide_in_the_admin(client, staged, make_user):
    both = make_user("Approver", "both")
    version = staged(user=both)
    request = services.approval_request_create(version=version, actor=both)
    client.force_login(both)
    response = client.post(
        f"/admin/registry/approvalrequest/{request.pk}/decide/", {"decision": "approve"}
    )
    assert "separation of duties" in client.get(response["Location"]).content.decode().lower()
    assert ApprovalRequest.objects.get(pk=request.pk).status == "pending"


def test_promote_needs_confirmation_then_runs(client, approved, approver):
    version = approved()
    client.force_login(approver)
    url = f"/admin/registry/mlmodelversion/{version.pk}/lifecycle/promote/"
    confirm = client.get(url)
    assert confirm.status_code == 200 and "Yes, promote to production" in confirm.content.decode()
    version.refresh_from_db()
    assert version.status == "staging"
    client.post(url, {"notes": "go"})
    version.refresh_from_db()
    assert version.status == "production"


def test_the_version_list_shows_deltas_against_production(client, approved, register, approver):
    first = approved()
    services.version_transition(version=first, to="production", actor=approver)
    register("1.1.0")
    client.force_login(approver)
    html = client.get("/admin/registry/mlmodelversion/").content.decode()
    assert "(+0.000)" in html  # same training data: equal metrics, zero delta


def test_decided_versions_and_audit_events_are_read_only(client, approved, approver):
    version = approved()
    client.force_login(approver)
    html = client.get(f"/admin/registry/mlmodelversion/{version.pk}/change/").content.decode()
    assert 'name="intended_use"' not in html
    assert client.get("/admin/core/auditevent/add/").status_code == 403


def test_non_approvers_cannot_open_the_admin(client, analyst, ml_engineer):
    client.force_login(analyst)
    assert client.get("/admin/").status_code == 302
    client.force_login(ml_engineer)
    assert client.get("/admin/registry/approvalrequest/").status_code == 302
