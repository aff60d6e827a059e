"""Fairness's part of the approval evidence and gate, filled into the registry's
extension slots (registry.extensions) when the app is ready.

The gate reads the model's policy: every protected attribute (``MLModel.
protected_attributes``, set by approvers) needs a complete, passing audit of this
version that covers that attribute alone. Per attribute and per source (the stored
evaluation set, logged labelled traffic) a ``fail`` decides whenever one exists, and
otherwise the latest complete audit does: a failure is never hidden by a later audit of
another attribute, by a later period of logged traffic chosen to pass, nor by the other
source's pass (a later ``pass`` may only replace an ``inconclusive``, which says there
was too little data). Audits of other attributes, and intersectional audits, are listed
for approvers but never count.
"""

from django.urls import reverse

from fairness.models import FairnessAudit
from fairness.services import fairness_audit_create
from registry.models import MLModelVersion

Status, Verdict, Source = FairnessAudit.Status, FairnessAudit.Verdict, FairnessAudit.Source


def _summary(audit: FairnessAudit) -> dict:
    return {
        "id": audit.pk,
        "attributes": list(audit.attributes),
        "source": audit.source,
        "status": audit.status,
        "verdict": audit.verdict,
        "reasons": audit.reasons,
        "trigger": audit.trigger,
        "created_at": audit.created_at.isoformat(),
        "completed_at": audit.completed_at.isoformat() if audit.completed_at else None,
        "url": reverse("fairness:audit", args=[audit.pk]),
    }


def attribute_decisions(
    version: MLModelVersion, audits: list[FairnessAudit] | None = None
) -> list[dict]:
    """For each protected attribute: the audits that decide it and whether it passes
    (``audits``: the version's audits newest first, when the caller has them)."""
    if audits is None:
        audits = list(version.fairness_audits.order_by("-created_at"))
    decisions = []
    for attribute in version.model.protected_attributes or []:
        alone = [a for a in audits if list(a.attributes) == [attribute]]
        deciding: dict[str, FairnessAudit] = {}
        for audit in alone:  # newest first: the first complete one of each source decides,
            if audit.status != Status.COMPLETE:  # unless an earlier one failed
                continue
            held = deciding.get(audit.source)
            if held is None or (audit.verdict == Verdict.FAIL and held.verdict != Verdict.FAIL):
                deciding[audit.source] = audit
        passed = bool(deciding) and all(a.verdict == Verdict.PASS for a in deciding.values())
        waiting = [a for a in alone if not a.is_final]
        if not deciding and waiting:
            detail = f"{attribute}: the fairness audit #{waiting[0].pk} is {waiting[0].status}"
        elif not deciding:
            detail = f"{attribute}: no complete audit of this attribute"
        else:
            detail = "; ".join(
                f"{attribute}: audit #{a.pk} ({a.get_source_display().lower()}) {a.verdict}"
                for a in sorted(deciding.values(), key=lambda a: a.source)
            )
        decisions.append(
            {
                "attribute": attribute,
                "passed": passed,
                "deciding_audits": sorted(a.pk for a in deciding.values()),
                "detail": detail,
            }
        )
    return decisions


def fairness_evidence(version: MLModelVersion) -> dict | None:
    """Every audit of the version, and the gate's decision per protected attribute."""
    audits = list(version.fairness_audits.order_by("-created_at"))
    if not audits and not version.model.fairness_gate:
        return None
    return {
        "gate": version.model.fairness_gate,
        "protected_attributes": list(version.model.protected_attributes or []),
        "decisions": attribute_decisions(version, audits),
        "audits": [_summary(a) for a in audits],
    }


def fairness_gate_checks(version: MLModelVersion) -> list[dict]:
    """One check per protected attribute when the model's policy turns the gate on."""
    if not version.model.fairness_gate:
        return []
    decisions = attribute_decisions(version)
    if not decisions:
        return [
            {
                "check": "passing fairness audit",
                "passed": False,
                "detail": "the gate is on but the policy names no protected attribute",
            }
        ]
    return [
        {
            "check": f"passing fairness audit of {d['attribute']}",
            "passed": d["passed"],
            "detail": d["detail"],
        }
        for d in decisions
    ]


def audit_on_approval_request(version: MLModelVersion, actor) -> None:
    """A gated version with a stored evaluation set gets one audit per protected
    attribute when approval is asked; the gate reads their verdicts when approvers
    decide."""
    if not (version.model.fairness_gate and version.evaluation_hash):
        return
    for attribute in version.model.protected_attributes or []:
        fairness_audit_create(
            version=version, trigger="approval", attributes=[attribute], requested_by=actor
        )
