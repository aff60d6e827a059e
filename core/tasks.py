"""The notification outbox's tasks, and the audit trail's checkpoints and summaries."""

import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from core.audit_repeats import audit_repeats_close as repeats_close
from core.checkpoints import AuditChainBroken, audit_checkpoint_create
from core.models import Notification
from core.notifications import notification_deliver_now, notification_queue, notifications_pending
from core.queue import RETRY_DEFAULTS

log = logging.getLogger(__name__)


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


def _chain_broken_notify(exc: AuditChainBroken) -> None:
    """Tell the auditors, once a day per distinct break."""
    subject = str(exc)[:300]
    since = timezone.now() - timedelta(days=1)
    if Notification.objects.filter(subject=subject, created_at__gte=since).exists():
        return
    notification_queue(
        event="audit.chain_broken",
        subject=subject,
        body=f"{exc}\n\nNo checkpoint was signed. Run `manage.py audit_verify "
        "--checkpoints <the external sink's file>` to see what the external checkpoints "
        "say, and docs/governance.md for what to do.",
        roles=("Auditor",),
    )


@shared_task(**RETRY_DEFAULTS)
def audit_checkpoint(full: bool = False) -> int | None:
    """Beat entries (every 10 min; nightly with ``full``) and every AUDIT_CHECKPOINT_EVERY
    events: verify, sign and publish a checkpoint; the number of events it covers, or
    None when the head had not moved or the chain is broken (logged, auditors told)."""
    try:
        checkpoint = audit_checkpoint_create(full=full)
    except AuditChainBroken as exc:
        log.error("%s; no checkpoint signed", exc)
        _chain_broken_notify(exc)
        return None
    return checkpoint.seq if checkpoint is not None else None


@shared_task(**RETRY_DEFAULTS)
def audit_repeats_close() -> int:
    """Beat entry: one summary event per repeated event whose period ended."""
    return repeats_close()
