"""Governance one person cannot bend: the fairness gate, self-reported metrics, policy
changes and model names, through the admin and the API."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from core.models import AuditEvent
from fairness.models import FairnessAudit
from registry import services
from registry.errors import GovernanceError
from registry.models import ApprovalRequest, MLModel, MLModelVersion, PolicyChange

pytestmark = pytest.mark.django_db


def _audit(version, attributes, verdict, source="evaluation"):
    """A complete audit of ``version`` (what a worker stores when it finishes)."""
    return FairnessAudit.objects.create(
        version=version,
        source=source,
        attributes=attributes,
        status="complete",
        verdict=verdict,
        reasons=[{"message": f"{'/'.join(attributes)}: {verdict}"}] if verdict != "pass" else [],
    )


def _change_form(model: MLModel, **changes) -> dict:
    """The admin change form of ``model`` as a browser posts it, with ``changes``."""
    values = {
        "name": model.name,
        "display_label": model.display_label,
        "description": model.description,
        "owner": model.owner_id or "",
        "min_precision": model.min_precision,
        "min_recall": model.min_recall,
        "min_f1": model.min_f1,
        "min_auc": model.min_auc,
        "required_approvals": model.required_approvals,
        "fairness_gate": model.fairness_gate,
        "protected_attributes": model.protected_attributes,
        "drift_window_minutes": model.drift_window_minutes,
        "degradation_threshold": model.degradation_threshold,
        "explain_threshold": model.explain_threshold,
        "feature_schema": model.feature_schema,
        **changes,
    }
    form = {}
    for key, value in values.items():
        if key == "fairness_gate":
            if value:
                form[key] = "on"
        elif key in ("protected_attributes", "feature_schema"):
            form[key] = json.dumps(value)
        else:
            form[key] = "" if value is None else str(value)
    return form


def _save_policy(client, model, **changes):
    response = client.post(
        f"/admin/registry/mlmodel/{model.pk}/change/", _change_form(model, **changes)
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    model.refresh_from_db()
    return response


def _decide(client, proposal, action):
    return client.post(
        "/admin/registry/policychange/",
        {"action": action, "_selected_action": [proposal.pk]},
        follow=True,
    )


# --- the fairness gate --------------------------------------------------------------


def test_a_passing_audit_of_another_attribute_does_not_hide_a_failing_one(
    api_as, staged, ml_engineer, approver
):
    version = staged(gate=True)
    request = services.approval_request_create(version=version, actor=ml_engineer)
    FairnessAudit.objects.filter(version=version).delete()  # the queued audit, not run
    _audit(version, ["geo_region"], "inconclusive")
    _audit(version, ["site"], "pass")  # an attribute of the engineer's making, run later
    response = api_as(approver).post(
        f"/api/v1/versions/{version.pk}/approve/", {"notes": "ok"}, format="json"
    )
    assert response.status_code == 409, response.json()
    failed = response.json()["details"]["failed_checks"]
    assert [c["check"] for c in failed] == ["passing fairness audit of geo_region"]
    assert "inconclusive" in failed[0]["detail"]
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.PENDING

    _audit(version, ["geo_region"], "pass")
    response = api_as(approver).post(
        f"/api/v1/versions/{version.pk}/approve/", {"notes": "ok"}, format="json"
    )
    assert response.status_code == 200, response.json()


def test_an_intersectional_audit_does_not_count_for_a_protected_attribute(staged):
    from fairness.gate import fairness_gate_checks

    version = staged(gate=True)
    _audit(version, ["geo_region", "site"], "pass")
    [check] = fairness_gate_checks(version)
    assert not check["passed"] and "no complete audit" in check["detail"]


def test_a_failure_on_the_evaluation_set_is_not_hidden_by_a_pass_on_logged_traffic(staged):
    from fairness.gate import fairness_gate_checks

    version = staged(gate=True)
    _audit(version, ["geo_region"], "fail", source="evaluation")
    _audit(version, ["geo_region"], "pass", source="logged")
    [check] = fairness_gate_checks(version)
    assert not check["passed"]


def test_every_protected_attribute_needs_its_own_passing_audit(staged):
    from fairness.gate import fairness_gate_checks

    version = staged(gate=True)
    MLModel.objects.filter(pk=version.model_id).update(protected_attributes=["geo_region", "site"])
    version.refresh_from_db()
    _audit(version, ["geo_region"], "pass")
    checks = fairness_gate_checks(version)
    assert [(c["check"], c["passed"]) for c in checks] == [
        ("passing fairness audit of geo_region", True),
        ("passing fairness audit of site", False),
    ]


def test_the_api_and_the_approval_page_list_every_audit(
    api_as, client, staged, ml_engineer, approver
):
    version = staged(gate=True)
    request = services.approval_request_create(version=version, actor=ml_engineer)
    FairnessAudit.objects.filter(version=version).delete()
    failing = _audit(version, ["geo_region"], "fail")
    other = _audit(version, ["site"], "pass")
    body = api_as(ml_engineer).get(f"/api/v1/versions/{version.pk}/").json()
    audits = body["fairness"]["audits"]
    assert [(a["id"], a["attributes"], a["source"], a["verdict"]) for a in audits] == [
        (other.pk, ["site"], "evaluation", "pass"),
        (failing.pk, ["geo_region"], "evaluation", "fail"),
    ]
    assert audits[1]["url"] == f"/fairness/audits/{failing.pk}/"
    assert audits[1]["reasons"] == [{"message": "geo_region: fail"}]
    assert body["fairness"]["decisions"][0]["passed"] is False
    client.force_login(approver)
    page = client.get(f"/admin/registry/approvalrequest/{request.pk}/change/").content.decode()
    assert f"/fairness/audits/{failing.pk}/" in page and f"/fairness/audits/{other.pk}/" in page
    assert "geo_region: audit #" in page


def test_a_gated_approval_request_audits_every_protected_attribute(staged, ml_engineer):
    version = staged(gate=True)
    MLModel.objects.filter(pk=version.model_id).update(protected_attributes=["geo_region", "asn"])
    version.refresh_from_db()
    services.approval_request_create(version=version, actor=ml_engineer)
    queued = FairnessAudit.objects.filter(version=version, trigger="approval")
    assert sorted(a.attributes for a in queued) == [["asn"], ["geo_region"]]


# --- self-reported metrics ----------------------------------------------------------


def test_self_reported_metrics_are_labelled_and_do_not_meet_a_floor(
    api_as, ml_engineer, approver, registration_files, artifact_root
):
    artifact, metadata, _ = registration_files
    engineer = api_as(ml_engineer)
    response = engineer.post(
        "/api/v1/models/threat/versions/",
        {
            "version": "1.0.0",
            "artifact": SimpleUploadedFile("model.json", artifact),
            "metadata": json.dumps({**metadata, "auc": 0.999, "precision": 0.99}),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["metrics_source"] == "self_reported"
    version = MLModelVersion.objects.get()
    MLModel.objects.filter(pk=version.model_id).update(fairness_gate=False, min_auc=0.8)
    for to in ("testing", "staging"):
        services.version_transition(version=version, to=to, actor=ml_engineer)
    response = engineer.post(f"/api/v1/versions/{version.pk}/request-approval/", {}, format="json")
    evidence = response.json()["evidence"]
    assert evidence["metrics_source"] == "self_reported"
    assert evidence["metrics"]["auc"]["candidate_source"] == "self_reported"
    response = api_as(approver).post(f"/api/v1/versions/{version.pk}/approve/", {}, format="json")
    assert response.status_code == 409
    [failed] = response.json()["details"]["failed_checks"]
    assert failed["check"] == "auc >= 0.8" and "self-reported" in failed["detail"]


def test_metrics_computed_from_a_labelled_evaluation_set_are_the_registrys(register):
    assert register().metrics_source == "evaluation"


# --- policy changes -----------------------------------------------------------------


@pytest.fixture
def two_approvals(staged):
    version = staged()
    MLModel.objects.filter(pk=version.model_id).update(required_approvals=2)
    version.model.refresh_from_db()
    return version


def test_one_approver_cannot_lower_required_approvals_and_approve_alone(
    client, two_approvals, ml_engineer, approver, second_approver
):
    version = two_approvals
    request = services.approval_request_create(version=version, actor=ml_engineer)
    client.force_login(approver)
    _save_policy(client, version.model, required_approvals=1)
    assert version.model.required_approvals == 2  # proposed, not applied
    proposal = PolicyChange.objects.get()
    assert proposal.status == "pending"
    assert proposal.changes == {"required_approvals": {"old": 2, "new": 1}}

    page = _decide(client, proposal, "confirm").content.decode()
    assert "separation of duties" in page
    proposal.refresh_from_db()
    assert proposal.status == "pending"
    assert AuditEvent.objects.filter(action="model.policy_self_confirm_refused").exists()

    services.approval_decide(request=request, approver=approver, decision="approve")
    request.refresh_from_db()
    assert request.status == "pending"  # one approval of two

    client.force_login(second_approver)
    _decide(client, proposal, "confirm")
    proposal.refresh_from_db()
    version.model.refresh_from_db()
    assert proposal.status == "applied" and proposal.decided_by == second_approver
    assert version.model.required_approvals == 1
    event = AuditEvent.objects.filter(action="model.policy_changed").latest("id")
    assert event.payload["changes"] == {"required_approvals": {"old": 2, "new": 1}}
    assert event.payload["proposed_by"] == approver.username
    # The pending request was given under the old policy: it expired.
    request.refresh_from_db()
    assert request.status == "expired"


def test_turning_the_gate_off_takes_a_second_approver(client, staged, approver, second_approver):
    version = staged(gate=True)
    client.force_login(approver)
    _save_policy(client, version.model, fairness_gate=False)
    assert version.model.fairness_gate is True
    proposal = PolicyChange.objects.get()
    client.force_login(second_approver)
    _decide(client, proposal, "reject")
    proposal.refresh_from_db()
    version.model.refresh_from_db()
    assert proposal.status == "rejected" and version.model.fairness_gate is True
    assert AuditEvent.objects.filter(action="model.policy_change_rejected").exists()


def test_strengthening_applies_at_once_and_expires_pending_and_unpromoted_approvals(
    client, approved, staged, ml_engineer, approver
):
    ready = approved("1.0.0")
    waiting = staged("1.1.0")
    request = services.approval_request_create(version=waiting, actor=ml_engineer)
    client.force_login(approver)
    _save_policy(client, ready.model, min_auc=0.5, protected_attributes=["geo_region", "asn"])
    model = ready.model
    assert model.min_auc == 0.5 and model.protected_attributes == ["asn", "geo_region"]
    assert not PolicyChange.objects.exists()
    event = AuditEvent.objects.filter(action="model.policy_changed").latest("id")
    assert event.payload["changes"]["min_auc"] == {"old": None, "new": 0.5}
    request.refresh_from_db()
    assert request.status == "expired"
    ready.refresh_from_db()
    assert not ready.is_approved()
    with pytest.raises(GovernanceError, match="no approval"):
        services.version_transition(version=ready, to="production", actor=approver)


def test_a_policy_edited_behind_the_admin_expires_the_approval(approved, approver):
    version = approved()
    MLModel.objects.filter(pk=version.model_id).update(required_approvals=3)
    version.refresh_from_db()
    with pytest.raises(GovernanceError, match="expired"):
        services.version_transition(version=version, to="production", actor=approver)


def test_a_stale_proposal_cannot_be_confirmed(client, staged, approver, second_approver):
    version = staged()
    MLModel.objects.filter(pk=version.model_id).update(min_auc=0.9)
    version.model.refresh_from_db()
    client.force_login(approver)
    _save_policy(client, version.model, min_auc=0.5)
    proposal = PolicyChange.objects.get()
    _save_policy(client, version.model, min_auc=0.95)  # strengthened meanwhile
    client.force_login(second_approver)
    page = _decide(client, proposal, "confirm").content.decode()
    assert "propose it again" in page
    proposal.refresh_from_db()
    version.model.refresh_from_db()
    assert proposal.status == "superseded" and version.model.min_auc == 0.95


def test_engineers_cannot_change_the_policy(client, staged, ml_engineer):
    version = staged()
    client.force_login(ml_engineer)
    response = client.post(
        f"/admin/registry/mlmodel/{version.model.pk}/change/",
        _change_form(version.model, required_approvals=5),
    )
    assert response.status_code in (302, 403)
    version.model.refresh_from_db()
    assert version.model.required_approvals == 1
    assert not PolicyChange.objects.exists()


# --- model names --------------------------------------------------------------------


def test_a_model_with_versions_cannot_be_renamed(client, register, approver):
    version = register()
    model = version.model
    client.force_login(approver)
    _save_policy(client, model, name="renamed", display_label="Threat detector")
    assert model.name == "threat" and model.display_label == "Threat detector"
    model.name = "renamed"
    with pytest.raises(ValidationError, match="cannot change"):
        model.save()
    assert MLModel.objects.filter(name="threat").exists()


# --- the policy re-read live after the approval ---------------------------------------


def test_an_audit_that_fails_after_the_approval_stops_the_promotion(approved, approver):
    version = approved()
    MLModel.objects.filter(pk=version.model_id).update(fairness_gate=True)
    version.refresh_from_db()
    # The gate switch is policy: the approval expired with it. Approve again under it.
    with pytest.raises(GovernanceError, match="expired"):
        services.version_transition(version=version, to="production", actor=approver)


def test_promotion_rechecks_the_gate_although_the_approval_still_matches(
    staged, ml_engineer, approver
):
    version = staged(gate=True)
    request = services.approval_request_create(version=version, actor=ml_engineer)
    FairnessAudit.objects.filter(version=version).delete()
    _audit(version, ["geo_region"], "pass")
    services.approval_decide(request=request, approver=approver, decision="approve")
    _audit(version, ["geo_region"], "fail", source="logged")  # traffic says otherwise now
    version.refresh_from_db()
    with pytest.raises(GovernanceError, match="does not meet") as exc:
        services.version_transition(version=version, to="production", actor=approver)
    assert "geo_region" in exc.value.details["failed_checks"][0]["check"]
    version.refresh_from_db()
    assert version.status == "staging"


def test_a_later_logged_period_chosen_to_pass_does_not_hide_a_failure(staged):
    from fairness.gate import fairness_gate_checks

    version = staged(gate=True)
    _audit(version, ["geo_region"], "pass", source="evaluation")
    _audit(version, ["geo_region"], "fail", source="logged")
    _audit(version, ["geo_region"], "pass", source="logged")  # a friendlier week
    [check] = fairness_gate_checks(version)
    assert not check["passed"] and "fail" in check["detail"]


def test_an_inconclusive_audit_may_be_followed_by_a_pass(staged):
    from fairness.gate import fairness_gate_checks

    version = staged(gate=True)
    _audit(version, ["geo_region"], "inconclusive")
    _audit(version, ["geo_region"], "pass")
    [check] = fairness_gate_checks(version)
    assert check["passed"]


def test_a_rollback_to_a_version_todays_policy_refuses_is_refused(approved, approver):
    first = approved("1.0.0")
    services.version_transition(version=first, to="production", actor=approver)
    second = approved("1.1.0")
    services.version_transition(version=second, to="production", actor=approver)
    MLModel.objects.filter(pk=first.model_id).update(min_auc=0.9999)
    with pytest.raises(GovernanceError, match="rolling back to") as exc:
        services.version_rollback(model=first.model, actor=approver)
    assert exc.value.details["failed_checks"][0]["check"] == "auc >= 0.9999"
    second.refresh_from_db()
    assert second.status == "production"


def test_a_policy_change_takes_an_expired_challenger_off_live_traffic(client, approved, approver):
    from registry.models import TrafficSplit
    from registry.traffic import traffic_set

    champion = approved("1.0.0")
    champion = services.version_transition(version=champion, to="production", actor=approver)
    challenger = approved("1.1.0")
    traffic_set(
        model=champion.model, challenger=challenger, challenger_bp=5000, shadows=[], actor=approver
    )
    client.force_login(approver)
    _save_policy(client, champion.model, min_auc=0.5)  # strengthening: applies at once
    split = TrafficSplit.objects.get(model=champion.model)
    assert split.challenger_id is None and split.challenger_bp == 0
    challenger.refresh_from_db()
    assert not challenger.is_approved()


def test_a_proposal_is_stale_once_the_policy_changed_even_back_again(
    client, staged, approver, second_approver
):
    version = staged()
    MLModel.objects.filter(pk=version.model_id).update(required_approvals=3)
    version.model.refresh_from_db()
    client.force_login(approver)
    _save_policy(client, version.model, required_approvals=1)  # proposed: 3 -> 1
    proposal = PolicyChange.objects.get()
    _save_policy(client, version.model, required_approvals=4)  # 3 -> 4 at once
    client.force_login(second_approver)
    _save_policy(client, version.model, required_approvals=3)  # 4 -> 3: a proposal
    back = PolicyChange.objects.get(status="pending", proposed_by=second_approver)
    client.force_login(approver)
    _decide(client, back, "confirm")
    version.model.refresh_from_db()
    assert version.model.required_approvals == 3  # the value the first proposal saw
    client.force_login(second_approver)
    page = _decide(client, proposal, "confirm").content.decode()
    assert "propose it again" in page
    proposal.refresh_from_db()
    version.model.refresh_from_db()
    assert proposal.status == "superseded" and version.model.required_approvals == 3


def test_a_proposal_left_a_week_cannot_be_confirmed(staged, approver, second_approver):
    from datetime import timedelta

    from django.utils import timezone

    from registry.policy import policy_change_confirm, policy_update

    version = staged(gate=True)
    proposal = policy_update(model=version.model, new={"fairness_gate": False}, actor=approver)
    PolicyChange.objects.filter(pk=proposal.pk).update(
        proposed_at=timezone.now() - timedelta(days=8)
    )
    with pytest.raises(GovernanceError, match="propose it again"):
        policy_change_confirm(proposal=proposal, actor=second_approver)
    version.model.refresh_from_db()
    assert version.model.fairness_gate is True
