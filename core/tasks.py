"""The notification outbox's tasks."""

from celery import shared_task

from core.notifications import notification_deliver_now, notifications_pending
from core.queue import RETRY_DEFAULTS


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
