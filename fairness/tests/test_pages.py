import csv
import io
import json

import pytest
from django.test import Client

from core.models import AuditEvent
from fairness.models import FairnessAudit
from fairness.services import fairness_audit_execute_now
from registry import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed(register_trained, biased_training, ml_engineer, approver):
    """A version whose approval audit failed and whose request an approver rejected."""
    version = register_trained(biased_training, model="threat-detector")
    request = services.approval_request_create(version=version, actor=ml_engineer, notes="v1")
    audit = fairness_audit_execute_now(audit_id=version.fairness_audits.get().pk)
    services.approval_decide(
        request=request, approver=approver, decision="reject", notes="APAC false positives"
    )
    return version, audit


def client_for(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def page_urls(version, audit):
    base = f"/fairness/versions/{version.pk}"
    return [
        "/fairness/",
        f"/fairness/models/{version.model.name}/",
        f"{base}/",
        f"/fairness/audits/{audit.pk}/",
        f"{base}/report/",
        f"{base}/report.csv",
        f"{base}/report.json",
    ]


def test_every_page_checks_the_role(reviewed, make_user, auditor, ml_engineer):
    version, audit = reviewed
    urls = page_urls(version, audit)
    for url in urls:
        response = client_for(None).get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    for role in ("Analyst", "SOC service"):
        user = make_user(role)
        for url in urls:
            assert client_for(user).get(url).status_code == 403, (role, url)
    for user in (auditor, ml_engineer):
        for url in urls:
            assert client_for(user).get(url).status_code == 200, (user, url)


def test_the_audit_page_shows_the_verdict_reasons_chart_data_and_four_fifths(reviewed, auditor):
    version, audit = reviewed
    response = client_for(auditor).get(f"/fairness/audits/{audit.pk}/")
    html = response.content.decode()
    assert 'Verdict: <span class="badge fail">fail</span>' in html
    assert "APAC: fpr impact ratio" in html
    assert 'data-testid="four-fifths"' in html and "plotly/plotly.min.js" in html
    chart = response.context["chart"]
    assert [p["metric"] for p in chart["panels"]] == ["fpr", "tpr", "selection_rate", "precision"]
    fpr = chart["panels"][0]
    apac = fpr["x"].index("APAC")
    group = next(g for g in audit.groups if g["name"] == "APAC")
    lo, hi = group["metrics"]["fpr"]["ci"]
    assert fpr["y"][apac] == group["metrics"]["fpr"]["value"]
    assert fpr["y"][apac] - fpr["minus"][apac] == pytest.approx(lo)
    assert fpr["y"][apac] + fpr["plus"][apac] == pytest.approx(hi)
    assert fpr["colours"][apac] == "#b3261e"  # fails four-fifths


def test_the_compliance_report_has_card_audits_approvals_and_trail(reviewed, auditor):
    version, audit = reviewed
    client = client_for(auditor)
    html = client.get(f"/fairness/versions/{version.pk}/report/").content.decode()
    for text in (
        "Compliance report: threat-detector 1.0.0",
        version.intended_use[:40],
        f"Audit #{audit.pk}",
        "reject by alex_approver",
        "APAC false positives",
        "passing fairness audit",
        "fairness.audit_completed",
        "approval.reject",
        "fairness/report.css",
    ):
        assert text in html, text
    report = json.loads(client.get(f"/fairness/versions/{version.pk}/report.json").content)
    assert report["model_card"]["limitations"] == version.limitations
    assert [a["verdict"] for a in report["fairness_audits"]] == ["fail"]
    assert report["approval_history"][0]["decisions"][0]["decision"] == "reject"
    actions = {e["action"] for e in report["audit_trail"]}
    assert {"version.registered", "approval.requested", "approval.reject"} <= actions
    assert {"fairness.audit_requested", "fairness.audit_completed"} <= actions
    rows = list(
        csv.reader(
            io.StringIO(client.get(f"/fairness/versions/{version.pk}/report.csv").content.decode())
        )
    )
    assert rows[0] == ["section", "item", "field", "value", "ci_low", "ci_high"]
    sections = {r[0] for r in rows[1:]}
    assert {
        "model_card",
        "fairness_audit",
        "fairness_group",
        "four_fifths",
        "approval",
        "audit_trail",
    } <= sections
    apac_fpr = next(
        r for r in rows if r[0] == "fairness_group" and r[1].endswith("APAC") and r[2] == "fpr"
    )
    assert float(apac_fpr[4]) < float(apac_fpr[3]) < float(apac_fpr[5])
    assert AuditEvent.objects.filter(action="fairness.report_exported").count() == 2


def test_the_run_button_queues_an_audit_for_engineers_only(reviewed, ml_engineer, auditor):
    version, _ = reviewed
    url = f"/fairness/versions/{version.pk}/run/"
    form = {"source": "evaluation", "attributes": "geo_region"}
    assert (
        b"run-audit-button"
        not in client_for(auditor).get(f"/fairness/versions/{version.pk}/").content
    )
    assert client_for(auditor).post(url, form).status_code == 403
    assert client_for(None).post(url, form).status_code == 302
    assert FairnessAudit.objects.count() == 1
    engineer = client_for(ml_engineer)
    assert b"run-audit-button" in engineer.get(f"/fairness/versions/{version.pk}/").content
    response = engineer.post(url, form)
    audit = FairnessAudit.objects.latest("pk")
    assert response.status_code == 302 and response["Location"] == f"/fairness/audits/{audit.pk}/"
    assert audit.requested_by == ml_engineer and audit.status == "pending"
    progress = engineer.get(response["Location"]).content.decode()
    assert 'http-equiv="refresh"' in progress and "pending" in progress.lower()


def test_the_run_form_refuses_bad_input(reviewed, ml_engineer):
    version, _ = reviewed
    url = f"/fairness/versions/{version.pk}/run/"
    client = client_for(ml_engineer)
    for form, message in [
        ({"source": "logged", "attributes": "geo_region"}, "needs period_start"),
        ({"source": "evaluation", "attributes": "device"}, "no attribute device"),
        ({"source": "evaluation", "attributes": ""}, "This field is required"),
        ({"source": "x", "attributes": "geo_region"}, "Select a valid choice"),
    ]:
        response = client.post(url, form)
        assert response.status_code == 400 and message in response.content.decode(), form
    assert FairnessAudit.objects.count() == 1


def test_the_admin_shows_audits_read_only(reviewed, approver):
    _, audit = reviewed
    client = client_for(approver)
    page = client.get(f"/admin/fairness/fairnessaudit/{audit.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(f"/admin/fairness/fairnessaudit/{audit.pk}/change/", {}).status_code == 403
    assert client.get("/admin/fairness/fairnessaudit/add/").status_code == 403
    assert client.get(f"/admin/fairness/fairnessaudit/{audit.pk}/delete/").status_code == 403
