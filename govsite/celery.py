"""The Celery application: broker and behaviour come from Django settings (CELERY_*)."""

import logging
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "govsite.settings")

app = Celery("govsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Defaults for every task: transient failures (network, lock timeouts) retry with
# exponential backoff; tasks are written to be idempotent, so redelivery is safe.
RETRY_DEFAULTS = {
    "autoretry_for": (ConnectionError, TimeoutError, OSError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 5,
}


log = logging.getLogger(__name__)


def enqueue_on_commit(task, *args) -> None:
    """Send ``task(*args)`` once the current transaction commits.

    The caller has already stored the work as a pending row (a queued drift run, an
    outbox notification), so a broker that is down or hangs must not turn a committed
    request into an error: the failure is logged and the periodic requeue sweep of
    that row's app sends it when the broker is back (docs/faults.md).
    """
    from django.db import transaction
    from kombu.exceptions import OperationalError

    def send():
        try:
            task.delay(*args)
        except (OperationalError, OSError) as exc:
            log.warning(
                "broker unavailable, %s%r left for the requeue sweep: %s", task.name, args, exc
            )

    transaction.on_commit(send)
