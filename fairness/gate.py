"""Fairness's part of the approval evidence and gate, filled into the registry's
extension slots (registry.extensions) when the app is ready."""

from fairness.services import fairness_audit_create
from registry.models import MLModelVersion


def latest_fairness(version: MLModelVersion) -> dict | None:
    audit = version.fairness_audits.order_by("-created_at").first()
    if audit is None:
        return None
    return {
        "id": audit.pk,
        "status": audit.status,
        "verdict": audit.verdict,
        "reasons": audit.reasons,
        "source": audit.source,
        "completed_at": audit.completed_at.isoformat() if audit.completed_at else None,
    }


def fairness_gate_checks(version: MLModelVersion) -> list[dict]:
    """The gate's check when the model's policy turns it on: a complete, passing audit."""
    if not version.model.fairness_gate:
        return []
    fairness = latest_fairness(version)
    passed = bool(fairness and fairness["status"] == "complete" and fairness["verdict"] == "pass")
    if fairness is None:
        detail = "no fairness audit has been run"
    elif fairness["status"] != "complete":
        detail = f"the fairness audit is {fairness['status']}"
    else:
        detail = f"latest audit #{fairness['id']}: {fairness['verdict']}"
    return [{"check": "passing fairness audit", "passed": passed, "detail": detail}]


def audit_on_approval_request(version: MLModelVersion, actor) -> None:
    """A gated version with a stored evaluation set is audited when approval is asked;
    the gate reads this audit's verdict when approvers decide."""
    if version.model.fairness_gate and version.evaluation_hash:
        fairness_audit_create(version=version, trigger="approval", requested_by=actor)
