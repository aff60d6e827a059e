from celery import shared_task

from fairness.services import fairness_audit_execute_now
from govsite.celery import RETRY_DEFAULTS


@shared_task(**RETRY_DEFAULTS)
def fairness_audit_execute(audit_id: int) -> str | None:
    audit = fairness_audit_execute_now(audit_id=audit_id)
    return audit.verdict if audit else None
