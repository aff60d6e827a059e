"""Read-side queries for the registry."""

from django.db.models import Count, Q

from core.models import AuditEvent
from registry.models import ApprovalRequest, MLModel, MLModelVersion


def home_summary(*, user) -> dict:
    models = MLModel.objects.annotate(
        version_count=Count("versions", distinct=True),
        pending=Count(
            "versions__approval_requests",
            filter=Q(versions__approval_requests__status=ApprovalRequest.Status.PENDING),
            distinct=True,
        ),
        open_alerts=Count("alerts", filter=~Q(alerts__status="resolved"), distinct=True),
    )
    production = {
        v.model_id: v
        for v in MLModelVersion.objects.filter(status=MLModelVersion.Status.PRODUCTION)
    }
    for m in models:
        # For the template: a display attribute, no model field.
        m.production = production.get(m.pk)  # type: ignore[attr-defined]
    return {"models": models}


def version_list(*, model: MLModel | None = None):
    qs = MLModelVersion.objects.select_related("model", "registered_by", "approved_by")
    if model is not None:
        qs = qs.filter(model=model)
    return qs


def audit_events(*, start=None, end=None, model_name: str = ""):
    qs = AuditEvent.objects.select_related("actor").order_by("id")
    if start is not None:
        qs = qs.filter(created_at__gte=start)
    if end is not None:
        qs = qs.filter(created_at__lt=end)
    if model_name:
        qs = qs.filter(model_name=model_name)
    return qs
