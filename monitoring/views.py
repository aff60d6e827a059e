"""Monitoring pages: overview, per-model dashboard, alert actions, run-now and run status.

Charts are built from stored per-window results (DriftResult, PerformanceResult)
and the version's reference summary; no page reads the prediction log.
"""

from datetime import timedelta

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from core.views import form_text, perm_required
from monitoring import charts
from monitoring.alerts import alert_acknowledge, alert_resolve
from monitoring.drift_jobs import drift_run_create
from monitoring.models import Alert, DriftRun
from monitoring.selectors import (
    alerts_list,
    drift_results,
    latest_runs,
    models_overview,
    monitored_versions,
    performance_results,
)
from registry.models import MLModel
from registry.services import GovernanceError

PERIOD = timedelta(days=7)


@require_GET
@perm_required("monitoring.view_monitoring")
def index(request):
    return render(
        request,
        "monitoring/index.html",
        {
            "models": models_overview(),
            "alerts": alerts_list(status="active")[:50],
        },
    )


def _selected_version(request, model):
    versions = monitored_versions(model=model)
    wanted = request.GET.get("version", "")
    chosen = next((v for v in versions if v.version == wanted), None)
    if chosen is None:
        production = model.production_version()
        chosen = next((v for v in versions if production and v.pk == production.pk), None)
    return versions, chosen or (versions[0] if versions else None)


def _datetime(raw: str):
    try:
        return parse_datetime(raw)
    except ValueError:  # well formed but impossible, such as 2026-02-30T10:00
        return None


@require_GET
@perm_required("monitoring.view_monitoring")
def dashboard(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    versions, version = _selected_version(request, model)
    context = {
        "model": model,
        "versions": versions,
        "version": version,
        "runs": latest_runs(model=model),
        "alerts": alerts_list(model=model.name).order_by("-last_seen")[:100],
        "can_manage": request.user.has_perm("monitoring.manage_alert"),
        "can_run": request.user.has_perm("monitoring.run_drift"),
    }
    if version is not None:
        last = drift_results(model=model, version=version).last()
        start = last.window_end - PERIOD if last else None
        results = list(drift_results(model=model, version=version, start=start))
        selection = charts.selection(
            results, request.GET.get("feature", ""), _datetime(request.GET.get("window", ""))
        )
        context.update(
            results=results,
            selection=selection,
            features=list(results[-1].features) if results else [],
            figures=charts.dashboard_figures(
                version=version,
                results=results,
                performance=list(performance_results(model=model, version=version)),
                alerts=list(alerts_list(model=model.name, version=version)),
                selection=selection,
            ),
        )
    return render(request, "monitoring/dashboard.html", context)


@require_POST
@perm_required("monitoring.manage_alert")
def alert_action(request, pk: int, verb: str):
    alert = get_object_or_404(Alert.objects.select_related("model"), pk=pk)
    try:
        if verb == "acknowledge":
            alert_acknowledge(alert=alert, user=request.user)
        else:
            alert_resolve(alert=alert, user=request.user, note=form_text(request, "note", 2000))
        messages.success(request, f"Alert {verb}d: {alert.title}")
    except GovernanceError as exc:
        messages.error(request, exc.message)
    return redirect("monitoring:dashboard", name=alert.model.name)


@require_POST
@perm_required("monitoring.run_drift")
def run_now(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    try:
        run = drift_run_create(model=model, trigger=DriftRun.Trigger.UI, user=request.user)
        messages.success(request, f"Drift run #{run.pk} queued ({run.windows_total} windows).")
    except GovernanceError as exc:
        messages.error(request, exc.message)
    return redirect("monitoring:dashboard", name=model.name)


@require_GET
@perm_required("monitoring.view_monitoring")
def run_status(request, pk: int):
    run = get_object_or_404(DriftRun, pk=pk)
    return JsonResponse(
        {
            "id": run.pk,
            "status": run.status,
            "windows_done": run.windows_done,
            "windows_total": run.windows_total,
            "progress": run.progress,
            "rows_read": run.rows_read,
            "message": run.message,
            "duration_seconds": run.duration_seconds,
        }
    )
