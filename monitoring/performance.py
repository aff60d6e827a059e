"""Performance on labelled feedback, per window, against the version's registered metrics.

At each window end the labelled predictions of the trailing
``PERFORMANCE_LOOKBACK_MINUTES`` (default one day, by event time) are scored at the
version's decision threshold: precision, recall, F1 and AUC, with the number of
labels. Verdicts arrive slowly and sparsely, so an hourly window alone rarely has
enough of them; the trailing period gives every window a measurement while still
following changes within a day.

A window is measured only with at least ``PERFORMANCE_MIN_LABELS`` labels (default
50) and ``PERFORMANCE_MIN_CLASS_LABELS`` of each class (default 10): with fewer,
recall and AUC swing by more than any useful threshold (recall from 10 positives
has a standard error up to 0.16). Otherwise the result says ``insufficient_labels``.

A metric is degraded when ``registered - observed > model.degradation_threshold``;
a degraded window raises (or updates) the ``performance:<version>`` alert, warning,
critical when some drop exceeds twice the threshold. A measured window without
degradation counts as a clear window for that alert.
"""

from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction

from monitoring.alerts import alert_clear, alert_raise
from monitoring.models import PerformanceResult, PredictionLog
from registry.models import MLModelVersion
from registry.training import binary_metrics

OK = "ok"
INSUFFICIENT = "insufficient_labels"
# PerformanceResult field -> MLModelVersion field holding the registered value.
METRICS = {"precision": "precision", "recall": "recall", "f1": "f1_score", "auc": "auc"}


def lookback() -> timedelta:
    return timedelta(minutes=settings.PERFORMANCE_LOOKBACK_MINUTES)


def labelled(*, version: MLModelVersion, start: datetime, end: datetime):
    """(labels, scores, predictions in the period) for a version."""
    period = PredictionLog.objects.filter(
        version=version, created_at__gte=start, created_at__lt=end
    )
    pairs = np.array(
        list(period.filter(label__isnull=False).values_list("label", "score")), dtype=np.float64
    ).reshape(-1, 2)
    return pairs[:, 0].astype(np.int8), pairs[:, 1], period.count()


def degradation(version: MLModelVersion, observed: dict, threshold: float) -> dict:
    out = {}
    for metric, field in METRICS.items():
        registered, value = getattr(version, field), observed.get(metric)
        if registered is None or value is None or not np.isfinite(value):
            continue
        if registered - value > threshold:
            out[metric] = {"registered": registered, "observed": value, "drop": registered - value}
    return out


@transaction.atomic
def performance_window_compute(
    *, version: MLModelVersion, window_end: datetime, run=None
) -> PerformanceResult:
    """Measure the period ending at ``window_end``, store it (replacing a re-run), alert."""
    start = window_end - lookback()
    y, scores, n_predictions = labelled(version=version, start=start, end=window_end)
    n_pos = int(y.sum())
    enough = (
        y.size >= settings.PERFORMANCE_MIN_LABELS
        and min(n_pos, y.size - n_pos) >= settings.PERFORMANCE_MIN_CLASS_LABELS
    )
    values: dict[str, float | None] = {metric: None for metric in METRICS}
    degraded = {}
    if enough:
        measured = binary_metrics(y, scores, threshold=version.decision_threshold)
        values = {metric: float(measured[metric]) for metric in METRICS}
        degraded = degradation(version, values, version.model.degradation_threshold)
    result, _ = PerformanceResult.objects.update_or_create(
        version=version,
        window_start=start,
        window_end=window_end,
        defaults={
            "n_predictions": n_predictions,
            "n_labels": int(y.size),
            "n_positive": n_pos,
            "status": OK if enough else INSUFFICIENT,
            "degraded": degraded,
            "run": run,
            **values,
        },
    )
    if enough:
        _alert(version, result)
    return result


def _alert(version: MLModelVersion, result: PerformanceResult) -> None:
    key = f"performance:{version.pk}"
    if not result.degraded:
        alert_clear(dedupe_key=key, at=result.window_end)
        return
    threshold = version.model.degradation_threshold
    worst = max(d["drop"] for d in result.degraded.values())
    names = ", ".join(
        f"{m} {d['observed']:.2f} (was {d['registered']:.2f})" for m, d in result.degraded.items()
    )
    alert_raise(
        model=version.model,
        version=version,
        kind="performance",
        severity="critical" if worst > 2 * threshold else "warning",
        dedupe_key=key,
        title=f"{version.model.name} {version.version}: performance degraded: {names}"[:300],
        details={
            "window_start": result.window_start.isoformat(),
            "window_end": result.window_end.isoformat(),
            "labels": result.n_labels,
            "positives": result.n_positive,
            "degraded": result.degraded,
            "threshold": threshold,
        },
        at=result.window_end,
    )
