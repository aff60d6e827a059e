"""Read-side queries for fairness pages and the compliance report."""

from django.db.models import Count, Q
from django.utils import timezone

from core.chart_text import chart_text
from fairness.models import FairnessAudit
from registry.evidence import CARD_FIELDS, METRICS
from registry.models import MLModel, MLModelVersion, semver_key
from registry.selectors import audit_events

# The rates charted on the audit page, in display order.
CHART_METRICS = (
    ("fpr", "False-positive rate"),
    ("tpr", "True-positive rate"),
    ("selection_rate", "Flag rate"),
    ("precision", "Precision"),
)


def audits(*, version: MLModelVersion | None = None, model: MLModel | None = None):
    qs = FairnessAudit.objects.select_related("version__model", "requested_by")
    if version is not None:
        qs = qs.filter(version=version)
    if model is not None:
        qs = qs.filter(version__model=model)
    return qs


def models_overview():
    """Every model with its versions (newest first), each with its latest audit."""
    models = list(MLModel.objects.annotate(audit_count=Count("versions__fairness_audits")))
    versions = MLModelVersion.objects.select_related("model").annotate(
        audit_count=Count("fairness_audits")
    )
    latest = {}
    for audit in FairnessAudit.objects.order_by("version_id", "-created_at"):
        latest.setdefault(audit.version_id, audit)
    by_model: dict[int, list] = {}
    for v in versions:
        v.latest_audit = latest.get(v.pk)
        by_model.setdefault(v.model_id, []).append(v)
    for m in models:
        m.version_rows = sorted(
            by_model.get(m.pk, []), key=lambda v: semver_key(v.version), reverse=True
        )
    return models


def chart_data(audit: FairnessAudit) -> dict:
    """Plotly-ready bars per metric with asymmetric CI error bars (JSON-safe)."""
    groups = [g for g in audit.groups if g["status"] != "empty"]
    panels = []
    for key, title in CHART_METRICS:
        names, values, plus, minus, colours = [], [], [], [], []
        for g in groups:
            metric = g["metrics"][key]
            if metric["value"] is None:
                continue
            value, ci = metric["value"], metric["ci"]
            names.append(chart_text(g["name"]))
            values.append(value)
            plus.append(max(ci[1] - value, 0.0) if ci and ci[1] is not None else 0.0)
            minus.append(max(value - ci[0], 0.0) if ci and ci[0] is not None else 0.0)
            colours.append(_colour(g, key))
        panels.append(
            {
                "metric": key,
                "title": title,
                "x": names,
                "y": values,
                "plus": plus,
                "minus": minus,
                "colours": colours,
            }
        )
    return {"panels": panels, "confidence": audit.result.get("settings", {}).get("confidence")}


def _colour(group: dict, metric: str) -> str:
    rule = group.get("four_fifths", {}).get(metric, {})
    return {
        "fail": "#b3261e",
        "inconclusive": "#a15c00",
        "reference": "#5b6675",
        "insufficient_data": "#9fb0c6",
    }.get(rule.get("status"), "#1f5fbf")


def four_fifths_rows(audit: FairnessAudit) -> list[dict]:
    gated = audit.result.get("settings", {}).get("gate_metrics", ["fpr"])
    rows = []
    for g in audit.groups:
        for metric, rule in g.get("four_fifths", {}).items():
            row = {"group": g["name"], "metric": metric, "count": g["count"], **rule}
            rows.append({**row, "gated": metric in gated})
    rows.sort(key=lambda r: (r["metric"] != "fpr", r["metric"], r["group"]))
    return rows


def version_trail(version: MLModelVersion):
    """Audit-trail events about this version, its approval requests and its audits."""
    request_ids = [str(pk) for pk in version.approval_requests.values_list("pk", flat=True)]
    audit_ids = [str(pk) for pk in version.fairness_audits.values_list("pk", flat=True)]
    about = (
        Q(object_type="MLModelVersion", object_id=str(version.pk))
        | Q(object_type="ApprovalRequest", object_id__in=request_ids)
        | Q(object_type="FairnessAudit", object_id__in=audit_ids)
        | Q(payload__version=version.version)
    )
    return audit_events(model_name=version.model.name).filter(about)


def approval_history(version: MLModelVersion) -> list[dict]:
    history = []
    requests = version.approval_requests.select_related("requested_by").prefetch_related(
        "decisions__approver"
    )
    for r in requests.order_by("requested_at"):
        history.append(
            {
                "id": r.pk,
                "requested_by": r.requested_by.username,
                "requested_at": r.requested_at.isoformat(),
                "status": r.status,
                "notes": r.notes,
                "decided_at": r.decided_at.isoformat() if r.decided_at else None,
                "evidence_hash": r.evidence_hash,
                "evidence": r.evidence,
                "decisions": [
                    {
                        "approver": d.approver.username,
                        "decision": d.decision,
                        "notes": d.notes,
                        "decided_at": d.decided_at.isoformat(),
                    }
                    for d in r.decisions.all()
                ],
            }
        )
    return history


def _audit_record(audit: FairnessAudit) -> dict:
    return {
        "id": audit.pk,
        "source": audit.source,
        "trigger": audit.trigger,
        "attributes": audit.attributes,
        "period": [
            audit.period_start.isoformat() if audit.period_start else None,
            audit.period_end.isoformat() if audit.period_end else None,
        ],
        "status": audit.status,
        "verdict": audit.verdict,
        "reasons": audit.reasons,
        "requested_by": audit.requested_by.username if audit.requested_by else None,
        "created_at": audit.created_at.isoformat(),
        "completed_at": audit.completed_at.isoformat() if audit.completed_at else None,
        "result": audit.result,
    }


def compliance_report(*, version: MLModelVersion, user) -> dict:
    """Everything an auditor needs about one version, as JSON-safe data."""
    trail = [
        {
            "id": e.pk,
            "created_at": e.created_at.isoformat(),
            "actor": e.actor_label,
            "action": e.action,
            "object": f"{e.object_type} {e.object_id}".strip(),
            "payload": e.payload,
            "row_hash": e.row_hash,
        }
        for e in version_trail(version)
    ]
    return {
        "generated_at": timezone.now().isoformat(),
        "generated_by": user.username,
        "model": version.model.name,
        "version": version.version,
        "version_id": version.pk,
        "status": version.status,
        "artifact_sha256": version.model_hash,
        "decision_threshold": version.decision_threshold,
        "registered_by": version.registered_by.username if version.registered_by else None,
        "deployed_at": version.deployed_at.isoformat() if version.deployed_at else None,
        "metrics": {m: getattr(version, m) for m in METRICS},
        "metrics_self_reported": version.metrics_self_reported,
        "model_card": {f: getattr(version, f) for f in CARD_FIELDS},
        "fairness_audits": [_audit_record(a) for a in audits(version=version)],
        "approval_history": approval_history(version),
        "audit_trail": trail,
    }
