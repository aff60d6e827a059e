from celery import shared_task

from core.queue import RETRY_DEFAULTS
from fairness import services


@shared_task(**RETRY_DEFAULTS)
def fairness_audit_execute(audit_id: int) -> str | None:
    audit = services.fairness_audit_execute_now(audit_id=audit_id)
    return audit.verdict if audit else None


@shared_task(**RETRY_DEFAULTS)
def fairness_schedule_run(source: str = "logged", days: int = 92, attributes=("geo_region",)):
    """The quarterly beat entry (see fairness.schedule): one audit per production version."""
    audits = services.fairness_schedule_run(source=source, days=days, attributes=attributes)
    return [audit.pk for audit in audits]


@shared_task(**RETRY_DEFAULTS)
def fairness_audits_requeue() -> int:
    """Beat entry: enqueue again the audits a worker should have but may not (see
    ``fairness_audits_pending``)."""
    ids = services.fairness_audits_pending()
    for pk in ids:
        fairness_audit_execute.delay(pk)
    return len(ids)
