"""The registry's fairness gate reads the audit that approval_request_create queues."""

import pytest

from fairness.models import FairnessAudit
from fairness.services import fairness_audit_execute_now
from registry import services
from registry.models import ApprovalRequest
from registry.services import GovernanceError

pytestmark = pytest.mark.django_db


def request_and_audit(version, engineer):
    request = services.approval_request_create(version=version, actor=engineer)
    audit = FairnessAudit.objects.get(version=version, trigger="approval")
    return request, fairness_audit_execute_now(audit_id=audit.pk)


def test_the_gate_blocks_a_version_whose_audit_fails(
    register_trained, biased_training, ml_engineer, approver
):
    version = register_trained(biased_training)
    request, audit = request_and_audit(version, ml_engineer)
    assert audit.verdict == "fail"
    with pytest.raises(GovernanceError, match="approval policy") as exc:
        services.approval_decide(request=request, approver=approver, decision="approve")
    check = exc.value.details["failed_checks"][0]
    assert check["check"] == "passing fairness audit of geo_region"
    assert check["detail"] == f"geo_region: audit #{audit.pk} (held-out evaluation data) fail"
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.PENDING and not request.decisions.exists()
    # A rejection is still possible (and needs notes).
    services.approval_decide(
        request=request, approver=approver, decision="reject", notes="APAC false positives"
    )
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.REJECTED


def test_the_gate_admits_a_version_whose_audit_passes(
    register_trained, fair_training, ml_engineer, approver
):
    version = register_trained(fair_training)
    request, audit = request_and_audit(version, ml_engineer)
    assert audit.verdict == "pass"
    services.approval_decide(request=request, approver=approver, decision="approve")
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.APPROVED
    version = services.version_transition(version=version, to="production", actor=approver)
    assert version.status == "production"
