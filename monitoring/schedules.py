"""django-celery-beat entries: one drift schedule per model, editable in the admin.

``drift_schedule_sync`` creates the model's ``PeriodicTask`` (interval = the model's
``drift_window_minutes``) when it is missing and changes the interval only when the
model's window changed, so an operator's edits in the admin (disable, queue,
start time) survive. A beat entry created by a data migration runs
``drift_schedules_sync`` every ten minutes, so new models get their schedule
without anyone calling it.
"""

from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from registry.models import MLModel

TASK = "monitoring.tasks.drift_schedule_model"
SYNC_TASK = "monitoring.tasks.drift_schedules_sync_task"
SYNC_NAME = "monitoring: drift schedules sync"


def schedule_name(model: MLModel) -> str:
    return f"drift: {model.name}"


@transaction.atomic
def drift_schedule_sync(*, model: MLModel) -> PeriodicTask:
    minutes = model.drift_window_minutes
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=minutes, period=IntervalSchedule.MINUTES
    )
    task = PeriodicTask.objects.filter(task=TASK, args=f"[{model.pk}]").first()
    if task is None:
        return PeriodicTask.objects.create(
            name=schedule_name(model),
            task=TASK,
            args=f"[{model.pk}]",
            kwargs="{}",
            interval=interval,
            description=f"Drift and performance windows of {model.name} "
            f"(every {minutes} min; follows the model's drift window)",
        )
    if task.interval_id != interval.pk and f"every {minutes} min" not in task.description:
        task.interval = interval
        task.description = (
            f"Drift and performance windows of {model.name} "
            f"(every {minutes} min; follows the model's drift window)"
        )
        task.save(update_fields=["interval", "description"])
    return task


def drift_schedules_sync() -> list[PeriodicTask]:
    return [drift_schedule_sync(model=model) for model in MLModel.objects.all()]
