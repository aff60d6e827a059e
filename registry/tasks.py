from celery import shared_task

from govsite.celery import RETRY_DEFAULTS
from registry.notifications import notification_deliver_now, notifications_pending


@shared_task(**RETRY_DEFAULTS)
def notification_deliver(notification_id: int) -> bool:
    return notification_deliver_now(notification_id=notification_id)


@shared_task(**RETRY_DEFAULTS)
def notifications_requeue() -> int:
    """Beat entry: enqueue again the outbox rows left pending (see notifications_pending)."""
    ids = notifications_pending()
    for pk in ids:
        notification_deliver.delay(pk)
    return len(ids)


@shared_task(**RETRY_DEFAULTS)
def experiment_guardrail_run(experiment_id: int) -> list[str]:
    from registry.experiments import experiment_guardrail

    return experiment_guardrail(experiment_id=experiment_id)


@shared_task(**RETRY_DEFAULTS)
def experiment_guardrails_check() -> int:
    """Beat entry point: one guardrail task per running experiment."""
    from registry.models import Experiment

    ids = list(
        Experiment.objects.filter(status=Experiment.Status.RUNNING).values_list("pk", flat=True)
    )
    for pk in ids:
        experiment_guardrail_run.delay(pk)
    return len(ids)
