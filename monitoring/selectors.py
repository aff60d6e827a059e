"""Read-side queries for monitoring: everything here reads stored results, never the raw log."""

from datetime import datetime

from django.db.models import Count, Q

from monitoring.models import Alert, DriftResult, DriftRun, PerformanceResult
from registry.models import MLModel, MLModelVersion


def alerts_list(
    *, status: str = "", model: str = "", severity: str = "", kind: str = "", version=None
):
    qs = Alert.objects.select_related("model", "version", "acknowledged_by", "resolved_by")
    if status == "active":
        qs = qs.filter(status__in=Alert.ACTIVE)
    elif status:
        qs = qs.filter(status=status)
    if model:
        qs = qs.filter(model__name=model)
    if severity:
        qs = qs.filter(severity=severity)
    if kind:
        qs = qs.filter(kind=kind)
    if version is not None:
        qs = qs.filter(version=version)
    return qs


def _alert_brief(alert: Alert) -> dict:
    return {
        "id": alert.pk,
        "kind": alert.kind,
        "severity": alert.severity,
        "status": alert.status,
        "title": alert.title,
        "first_seen": alert.first_seen.isoformat(),
        "last_seen": alert.last_seen.isoformat(),
        "count": alert.count,
    }


def version_drift_status(*, version: MLModelVersion) -> dict | None:
    """Latest drift verdict, drifted features, latest performance and live alerts of a
    version (the registry's approval evidence). None when nothing was monitored yet."""
    latest = DriftResult.objects.filter(version=version).order_by("-window_end").first()
    measured = (
        DriftResult.objects.filter(version=version, status="ok").order_by("-window_end").first()
    )
    performance = (
        PerformanceResult.objects.filter(version=version, status="ok")
        .order_by("-window_end")
        .first()
    )
    alerts = list(alerts_list(status="active", version=version).order_by("-last_seen")[:20])
    if latest is None and performance is None and not alerts:
        return None
    out = {
        "latest_window": _window(latest),
        "latest_verdict": _window(measured),
        "drift": measured.drift if measured else None,
        "severity": measured.severity if measured else None,
        "drifted_features": measured.drifted_features if measured else [],
        "performance": _performance(performance),
        "open_alerts": [_alert_brief(a) for a in alerts],
    }
    return out


def _window(result: DriftResult | None) -> dict | None:
    if result is None:
        return None
    return {
        "window_start": result.window_start.isoformat(),
        "window_end": result.window_end.isoformat(),
        "status": result.status,
        "n_rows": result.n_rows,
        "drift": result.drift,
        "drifted_features": result.drifted_features,
    }


def _performance(result: PerformanceResult | None) -> dict | None:
    if result is None:
        return None
    return {
        "window_start": result.window_start.isoformat(),
        "window_end": result.window_end.isoformat(),
        "labels": result.n_labels,
        "precision": result.precision,
        "recall": result.recall,
        "f1": result.f1,
        "auc": result.auc,
        "degraded": result.degraded,
    }


def drift_results(
    *,
    model: MLModel,
    version: MLModelVersion | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
):
    qs = DriftResult.objects.filter(version__model=model).select_related("version")
    if version is not None:
        qs = qs.filter(version=version)
    if start is not None:
        qs = qs.filter(window_end__gt=start)
    if end is not None:
        qs = qs.filter(window_start__lt=end)
    return qs.order_by("version__created_at", "window_start")


def performance_results(*, model: MLModel, version: MLModelVersion | None = None):
    qs = PerformanceResult.objects.filter(version__model=model).select_related("version")
    if version is not None:
        qs = qs.filter(version=version)
    return qs.order_by("version__created_at", "window_end")


def monitored_versions(*, model: MLModel) -> list[MLModelVersion]:
    """Versions with stored drift results, newest first, then the production version."""
    ids = DriftResult.objects.filter(version__model=model).values("version").distinct()
    return list(MLModelVersion.objects.filter(Q(pk__in=ids)).order_by("-created_at"))


def latest_runs(*, model: MLModel, limit: int = 5):
    return DriftRun.objects.filter(model=model).select_related("requested_by")[:limit]


def models_overview():
    return MLModel.objects.annotate(
        active_alerts=Count("alerts", filter=Q(alerts__status__in=Alert.ACTIVE), distinct=True)
    ).order_by("name")
