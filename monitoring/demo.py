"""Demo data for monitoring: drift and performance runs over the logged week of traffic.

``build`` is called by the demo command after the traffic is logged. It creates the
beat schedules, then runs every window that has traffic, in this process, so the
dashboard opens on real results and real alerts. Running it again changes nothing:
a range that a demo run already covered is skipped.
"""

from datetime import timedelta

from django.db.models import Max, Min

from monitoring.drift_jobs import drift_run_create, drift_run_execute, window_floor
from monitoring.models import Alert, DriftRun, PredictionLog
from monitoring.schedules import drift_schedules_sync
from registry.models import MLModel


def build(*, stdout) -> None:
    drift_schedules_sync()
    for model in MLModel.objects.order_by("name"):
        span = PredictionLog.objects.filter(version__model=model).aggregate(
            first=Min("created_at"), last=Max("created_at")
        )
        if span["first"] is None:
            continue
        minutes = model.drift_window_minutes
        start = window_floor(span["first"], minutes)
        end = window_floor(span["last"], minutes) + timedelta(minutes=minutes)
        done = DriftRun.objects.filter(
            model=model,
            trigger=DriftRun.Trigger.DEMO,
            status=DriftRun.Status.SUCCEEDED,
            start=start,
            end=end,
        ).exists()
        if not done:
            created = drift_run_create(
                model=model, start=start, end=end, trigger=DriftRun.Trigger.DEMO, enqueue=False
            )
            run = drift_run_execute(run_id=created.pk)
            if run is not None:  # None: a worker claimed it first
                stdout.write(
                    f"  drift: {model.name}: {run.windows_done} windows, "
                    f"{run.rows_read} predictions in {run.duration_seconds:.1f}s"
                )
        _report(model, stdout)


def _report(model: MLModel, stdout) -> None:
    alerts = Alert.objects.filter(model=model).select_related("version").order_by("first_seen")
    for alert in alerts:
        stdout.write(
            f"  alert [{alert.severity}, {alert.status}] {alert.title}; first seen "
            f"{alert.first_seen:%a %Y-%m-%d %H:%M} UTC, {alert.count} window(s)"
        )
