"""The experiment page of a model: live split, arms with intervals, shadows, history."""

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from core.views import perm_required
from experiments.services import experiment_history, experiment_results, shadow_results
from registry.models import Experiment, MLModel
from registry.traffic import traffic_config


def _chart(results, shadows) -> list[dict]:
    """Points (label, value, low, high) for the metric chart with error bars."""
    points = []
    if results is not None:
        for arm in results.arms:
            if arm.metric.value is not None:
                label = f"{arm.arm} {arm.version}"
                points.append(_point(label, arm.metric))
    for shadow in shadows:
        if shadow.shadow_metric.value is not None:
            points.append(_point(f"shadow {shadow.version}", shadow.shadow_metric))
    return points


def _point(label, metric) -> dict:
    return {"label": label, "value": metric.value, "low": metric.low, "high": metric.high}


@require_GET
@perm_required("monitoring.view_monitoring", "registry.view_mlmodelversion")
def experiment_page(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    config, etag = traffic_config(model=model)
    history = list(experiment_history(model=model))
    current = next(
        (e for e in history if e.status in (Experiment.Status.PLANNED, Experiment.Status.RUNNING)),
        None,
    )
    shown = current or next((e for e in history if e.started_at), None)
    results = experiment_results(experiment=shown) if shown else None
    metric = shown.primary_metric if shown else "precision"
    shadows = shadow_results(model=model, metric=metric)
    context = {
        "model": model,
        "config": config,
        "etag": etag,
        "current": current,
        "shown": shown,
        "results": results,
        "shadows": shadows,
        "history": history,
        "chart": _chart(results, shadows),
        "metric": metric,
        "can_edit": request.user.has_perm("registry.set_traffic") and request.user.is_staff,
    }
    return render(request, "experiments/experiment.html", context)
