import json

import pytest

from core.models import AuditEvent
from registry import services
from registry.models import MLModelVersion

pytestmark = pytest.mark.django_db

ROLES = ["ml_engineer", "approver", "analyst", "auditor", "soc_service"]


def upload(client, files, version="2.0.0", **overrides):
    artifact, metadata, evaluation = files
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = {
        "version": version,
        "artifact": SimpleUploadedFile("model.json", overrides.get("artifact", artifact)),
        "metadata": json.dumps(overrides.get("metadata", metadata)),
        "evaluation": SimpleUploadedFile("eval.npz", evaluation),
    }
    return client.post("/api/v1/models/threat/versions/", data, format="multipart")


@pytest.mark.parametrize("role", ROLES)
def test_only_ml_engineers_may_register(role, request, api_as, registration_files, artifact_root):
    user = request.getfixturevalue(role)
    response = upload(api_as(user), registration_files)
    if role == "ml_engineer":
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["version"] == "2.0.0" and body["status"] == "training"
        assert body["registered_by"] == user.username
    else:
        assert response.status_code == 403
        assert MLModelVersion.objects.count() == 0


def test_registration_errors_name_the_field(api_as, ml_engineer, registration_files, artifact_root):
    client = api_as(ml_engineer)
    response = upload(client, registration_files, version="two")
    assert response.status_code == 400
    assert response.json()["details"] == {"field": "version"}
    response = upload(client, registration_files, artifact=b"\x80\x04pickle")
    assert response.status_code == 400 and "pickle" in response.json()["error"]
    assert upload(client, registration_files).status_code == 201
    response = upload(client, registration_files)
    assert response.status_code == 409 and "already registered" in response.json()["error"]
    assert MLModelVersion.objects.count() == 1


@pytest.mark.parametrize("role", ROLES)
def test_everyone_with_a_role_reads_the_registry(role, request, api_as, register):
    version = register()
    client = api_as(request.getfixturevalue(role))
    assert client.get("/api/v1/models/").json()["results"][0]["name"] == "threat"
    assert client.get("/api/v1/models/threat/versions/").json()["count"] == 1
    assert client.get(f"/api/v1/versions/{version.pk}/").json()["model_hash"] == version.model_hash


def test_the_workflow_end_to_end_over_the_api(api_as, ml_engineer, approver, analyst, staged):
    version = staged()
    engineer, boss, reader = api_as(ml_engineer), api_as(approver), api_as(analyst)
    base = f"/api/v1/versions/{version.pk}"
    assert reader.post(f"{base}/request-approval/", {}).status_code == 403
    response = engineer.post(f"{base}/request-approval/", {"notes": "ready"}, format="json")
    assert response.status_code == 201
    assert response.json()["evidence"]["version"]["version"] == "1.0.0"
    assert engineer.post(f"{base}/approve/", {}).status_code == 403
    assert reader.post(f"{base}/approve/", {}).status_code == 403
    response = boss.post(f"{base}/approve/", {"notes": "ok"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "approved"
    assert engineer.post(f"{base}/transition/", {"to": "production"}).status_code == 403
    response = boss.post(f"{base}/transition/", {"to": "production"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "production"
    assert AuditEvent.objects.filter(action="permission.denied").count() == 4


def test_illegal_transitions_and_missing_requests_get_409(api_as, approver, register):
    version = register()
    client = api_as(approver)
    response = client.post(f"/api/v1/versions/{version.pk}/transition/", {"to": "production"})
    assert response.status_code == 409
    assert response.json()["details"]["allowed"] == ["archived", "testing"]
    response = client.post(f"/api/v1/versions/{version.pk}/approve/", {})
    assert response.status_code == 409


def test_self_approval_over_the_api_is_403(api_as, make_user, staged):
    version = staged()
    both = make_user("Approver", "dual")
    both.groups.add(*make_user("ML engineer", "tmp").groups.all())
    client = api_as(both)
    assert client.post(f"/api/v1/versions/{version.pk}/request-approval/", {}).status_code == 201
    response = client.post(f"/api/v1/versions/{version.pk}/approve/", {})
    assert response.status_code == 403 and "separation of duties" in response.json()["error"]


def test_rollback_endpoint(api_as, approver, analyst, approved):
    first = approved("1.0.0")
    services.version_transition(version=first, to="production", actor=approver)
    second = approved("1.1.0")
    services.version_transition(version=second, to="production", actor=approver)
    assert api_as(analyst).post("/api/v1/models/threat/rollback/", {}).status_code == 403
    response = api_as(approver).post("/api/v1/models/threat/rollback/", {"notes": "regression"})
    assert response.status_code == 200 and response.json()["version"] == "1.0.0"


def test_audit_export_for_auditors_only(client, auditor, analyst, register):
    register()
    client.force_login(analyst)
    assert client.get("/registry/audit/export/?format=csv").status_code == 403
    client.force_login(auditor)
    response = client.get("/registry/audit/export/?format=csv")
    assert response.status_code == 200
    text = response.content.decode()
    assert text.splitlines()[0].startswith("id,created_at,actor_label,action")
    assert "version.registered" in text
    rows = json.loads(client.get("/registry/audit/export/?format=json").content)
    assert {r["action"] for r in rows} >= {"version.registered", "audit.exported"}


def test_the_version_page_links_to_its_reports(client, auditor, register):
    version = register()
    client.force_login(auditor)
    html = client.get(f"/registry/versions/{version.pk}/").content.decode()
    assert f"/fairness/versions/{version.pk}/report/" in html
    assert f"/explain/?model=threat&amp;version={version.pk}" in html
    response = client.get(f"/explain/?model=threat&version={version.pk}")
    assert response.status_code == 200


def test_page_numbers_past_what_the_database_takes_are_a_page_not_a_500(
    api_as, register, ml_engineer
):
    """Found by bench/fuzz_api.sh: a 27-digit limit reached SQLite as an integer it
    refused."""
    register()
    client = api_as(ml_engineer)
    huge = "108794632743745082819084288"
    response = client.get(f"/api/v1/models/?limit={huge}&offset=0")
    assert response.status_code == 200 and len(response.json()["results"]) == 1
    response = client.get(f"/api/v1/models/?limit=10&offset={huge}")
    assert response.status_code == 200 and response.json()["results"] == []
    response = client.get("/api/v1/fairness/audits/?limit=40497862934284230656")
    assert response.status_code == 200
