"""Task plumbing for every app: retry defaults and enqueue after commit."""

import logging
from typing import TypedDict

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError


class RetryOptions(TypedDict):
    autoretry_for: tuple[type[BaseException], ...]
    retry_backoff: bool
    retry_backoff_max: int
    retry_jitter: bool
    max_retries: int


# Defaults for every task: transient failures (network, lock timeouts) retry with
# exponential backoff; tasks are written to be idempotent, so redelivery is safe.
RETRY_DEFAULTS: RetryOptions = {
    "autoretry_for": (ConnectionError, TimeoutError, OSError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 5,
}

log = logging.getLogger(__name__)


def enqueue_on_commit(task: str, *args: object) -> None:
    """Send the task named ``task`` with ``args`` once the current transaction commits.

    Services name their task (``"fairness.tasks.fairness_audit_execute"``) instead of
    importing it, so that a services module never imports its own app's tasks module,
    which imports the services. The caller has already stored the work as a pending row
    (a queued drift run, an outbox notification), so a broker that is down or hangs must
    not turn a committed request into an error: the failure is logged and the periodic
    requeue sweep of that row's app sends it when the broker is back (docs/faults.md).
    """

    def send() -> None:
        try:
            current_app.send_task(task, args=args)
        except (OperationalError, OSError) as exc:
            log.warning("broker unavailable, %s%r left for the requeue sweep: %s", task, args, exc)

    transaction.on_commit(send)
