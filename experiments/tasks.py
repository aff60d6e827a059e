"""Guardrail checks of running experiments (beat: every few minutes)."""

from celery import shared_task

from core.queue import RETRY_DEFAULTS
from experiments.services import experiment_guardrail
from registry.models import Experiment


@shared_task(**RETRY_DEFAULTS)
def experiment_guardrail_run(experiment_id: int) -> list[str]:
    return experiment_guardrail(experiment_id=experiment_id)


@shared_task(**RETRY_DEFAULTS)
def experiment_guardrails_check() -> int:
    """Beat entry point: one guardrail task per running experiment."""
    ids = list(
        Experiment.objects.filter(status=Experiment.Status.RUNNING).values_list("pk", flat=True)
    )
    for pk in ids:
        experiment_guardrail_run.delay(pk)
    return len(ids)
