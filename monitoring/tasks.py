"""Celery tasks: thin wrappers that call one service each (idempotent, retried)."""

from celery import shared_task

from govsite.celery import RETRY_DEFAULTS


@shared_task(**RETRY_DEFAULTS)
def drift_run_task(run_id: int) -> int | None:
    from monitoring.drift_jobs import drift_run_execute

    run = drift_run_execute(run_id=run_id)
    return run.pk if run else None


@shared_task(**RETRY_DEFAULTS)
def drift_schedule_model(model_id: int) -> int | None:
    from monitoring.drift_jobs import drift_schedule_tick
    from registry.models import MLModel

    model = MLModel.objects.filter(pk=model_id).first()
    if model is None:
        return None
    run = drift_schedule_tick(model=model)
    return run.pk if run else None


@shared_task(**RETRY_DEFAULTS)
def drift_schedules_sync_task() -> int:
    from monitoring.schedules import drift_schedules_sync

    return len(drift_schedules_sync())
