"""Celery tasks: thin wrappers that call one service each (idempotent, retried)."""

from celery import shared_task

from core.queue import RETRY_DEFAULTS
from monitoring.drift_jobs import (
    drift_run_execute,
    drift_run_lease_left,
    drift_runs_pending,
    drift_schedule_tick,
)
from monitoring.schedules import drift_schedules_sync
from registry.models import MLModel


@shared_task(bind=True, **RETRY_DEFAULTS)
def drift_run_task(self, run_id: int) -> int | None:
    run = drift_run_execute(run_id=run_id)
    if run is not None:
        return run.pk
    wait = drift_run_lease_left(run_id=run_id)
    if wait is not None and self.request.retries < self.max_retries:
        # Another delivery holds the run: it is alive and finishes it, or its worker died
        # and the lease lapses; look again then. (Given up, the requeue sweep takes over.)
        raise self.retry(countdown=wait + 1)
    return None


@shared_task(**RETRY_DEFAULTS)
def drift_runs_requeue() -> int:
    """Beat entry: enqueue again the runs a worker should have but may not (see
    ``drift_runs_pending``)."""
    ids = drift_runs_pending()
    for pk in ids:
        drift_run_task.delay(pk)
    return len(ids)


@shared_task(**RETRY_DEFAULTS)
def drift_schedule_model(model_id: int) -> int | None:

    model = MLModel.objects.filter(pk=model_id).first()
    if model is None:
        return None
    run = drift_schedule_tick(model=model)
    return run.pk if run else None


@shared_task(**RETRY_DEFAULTS)
def drift_schedules_sync_task() -> int:
    return len(drift_schedules_sync())
