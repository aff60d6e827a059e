from celery import shared_task

from govsite.celery import RETRY_DEFAULTS
from registry.notifications import notification_deliver_now


@shared_task(**RETRY_DEFAULTS)
def notification_deliver(notification_id: int) -> bool:
    return notification_deliver_now(notification_id=notification_id)
