"""Crash guard for task bodies that load or evaluate a booster: a crash cannot loop.

Tasks are acknowledged late and rejected when their worker is lost
(``CELERY_TASK_ACKS_LATE``, ``CELERY_TASK_REJECT_ON_WORKER_LOST``), so a message whose
body kills the worker (a SIGSEGV in native code, the OOM killer) is delivered again,
forever. ``crash_guarded`` counts the starts of a body under a key in a transaction
committed before the body runs, and deletes the count when the body ends, normally or
with a Python exception (Celery retries those). What is left counts deaths. Once it
passes ``TASK_CRASH_LIMIT`` the body is not run: the key is quarantined,
``on_quarantine`` marks the object failed and raises the alert, and the task returns,
so the message is acknowledged and the rest of the queue goes on (docs/faults.md).

A key must belong to one running body at a time (an audit claimed by a conditional
update, one message's work on one version): two bodies running at once under one key
would count as each other's deaths.
"""

import logging
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from core.audit import audit_record
from core.models import TaskDelivery

T = TypeVar("T")
log = logging.getLogger(__name__)


def delivery_start(*, key: str, task: str, label: str) -> TaskDelivery:
    """Count one start of the body under ``key``, committed before the body runs."""
    now = timezone.now()
    with transaction.atomic():
        TaskDelivery.objects.get_or_create(
            key=key,
            defaults={"task": task, "label": label[:300], "first_seen": now, "last_seen": now},
        )
        # A quarantined key keeps the count it was quarantined with.
        TaskDelivery.objects.filter(key=key, quarantined_at__isnull=True).update(
            attempts=F("attempts") + 1, last_seen=now
        )
        return TaskDelivery.objects.get(key=key)


def delivery_quarantine(*, delivery: TaskDelivery) -> bool:
    """Mark the key quarantined; True for the call that did (the first one)."""
    deaths = delivery.attempts - 1
    times = "once" if deaths == 1 else f"{deaths} times"
    reason = f"the worker died {times} running it (limit {settings.TASK_CRASH_LIMIT})"
    now = timezone.now()
    marked = TaskDelivery.objects.filter(pk=delivery.pk, quarantined_at__isnull=True).update(
        quarantined_at=now, reason=reason
    )
    delivery.refresh_from_db()
    return bool(marked)


def delivery_end(*, key: str) -> None:
    """The body reached its end: this start was no death, forget the count."""
    try:
        TaskDelivery.objects.filter(key=key, quarantined_at__isnull=True).delete()
    except DatabaseError:
        # The body's own error (a database gone) is the one worth raising; a row left
        # behind counts one death too many, which the next normal end clears.
        log.exception("could not clear the crash count of %s", key)


def crash_guarded(
    *,
    key: str,
    task: str,
    label: str,
    body: Callable[[], T],
    on_quarantine: Callable[[TaskDelivery, bool], T],
) -> T:
    """``body()``, unless the worker died more than ``TASK_CRASH_LIMIT`` times running
    it under ``key``: then ``on_quarantine(delivery, first)`` instead, ``first`` being
    True for the call that quarantined the key (it marks the object failed and raises
    the alert; later calls only skip). Call it outside any transaction, before the
    body loads a booster."""
    delivery = delivery_start(key=key, task=task, label=label)
    if delivery.quarantined_at is not None:
        return on_quarantine(delivery, False)
    if delivery.attempts > settings.TASK_CRASH_LIMIT:
        first = delivery_quarantine(delivery=delivery)
        log.error("quarantined %s on %s: %s", task, label, delivery.reason)
        return on_quarantine(delivery, first)
    try:
        return body()
    finally:
        delivery_end(key=key)


def quarantined_keys(*, prefix: str) -> set[str]:
    """The quarantined keys that start with ``prefix``."""
    rows = TaskDelivery.objects.filter(key__startswith=prefix, quarantined_at__isnull=False)
    return set(rows.values_list("key", flat=True))


@transaction.atomic
def delivery_release(*, key: str, note: str = "") -> TaskDelivery | None:
    """Forget the count of ``key`` (quarantined or not), so its body runs again; audited.
    The object the quarantine failed stays failed: run it again as a new one."""
    delivery = TaskDelivery.objects.select_for_update().filter(key=key).first()
    if delivery is None:
        return None
    audit_record(
        action="task.quarantine_released",
        payload={
            "key": delivery.key,
            "task": delivery.task,
            "object": delivery.label,
            "attempts": delivery.attempts,
            "reason": delivery.reason,
            "note": note,
        },
    )
    delivery.delete()
    return delivery
