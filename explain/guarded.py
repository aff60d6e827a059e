"""The precompute tasks' work under the crash guard (core.quarantine).

A booster that kills the worker (a SIGSEGV in native code) would otherwise do it again
on every redelivery of the message. The work is split by version, and each version's
part is counted under the message and the version: one message works on one version
at a time, while other messages may precompute the same version concurrently. A part
that killed the worker more than ``TASK_CRASH_LIMIT`` times quarantines the version's
precompute (a row keyed by the version alone, which later messages skip too until an
operator deletes it) and raises a critical alert; the message's other versions go on.
"""

import uuid
from datetime import timedelta
from functools import partial

from django.db.models import QuerySet
from django.utils import timezone

from core.models import TaskDelivery
from core.quarantine import crash_guarded, quarantined_keys
from explain.services import PrecomputeReport, explanations_precompute, high_risk_predictions
from monitoring.alerts import alert_task_quarantined
from registry.models import MLModelVersion

VERSION_KEY = "explain.precompute:version:"


def explanations_precompute_guarded(
    *, predictions: QuerySet, batch_size: int, task: str, message: str | None
) -> PrecomputeReport:
    """``explanations_precompute`` one version at a time, each under the crash guard;
    ``message`` is the Celery task id (stable across redeliveries; None off Celery)."""
    message = message or f"local-{uuid.uuid4()}"
    blocked = quarantined_keys(prefix=VERSION_KEY)
    version_ids = sorted(set(predictions.order_by().values_list("version_id", flat=True)))
    report = PrecomputeReport()
    for version_id in version_ids:
        rows = predictions.filter(version_id=version_id)
        version = MLModelVersion.objects.select_related("model").get(pk=version_id)
        if f"{VERSION_KEY}{version_id}" in blocked:
            _skip(report, version, rows)
            continue
        part = crash_guarded(
            key=f"explain.precompute:{message}:{version_id}"[:200],
            task=task,
            label=f"precompute of {version} (message {message})",
            body=partial(explanations_precompute, predictions=rows, batch_size=batch_size),
            on_quarantine=partial(_quarantined, report, version, rows),
        )
        _merge(report, part)
    return report


def explanations_precompute_recent_guarded(
    *, minutes: int, batch_size: int, task: str, message: str | None
) -> PrecomputeReport:
    """``explanations_precompute_recent`` under the guard: the high-risk predictions
    received in the last ``minutes``."""
    since = timezone.now() - timedelta(minutes=minutes)
    recent = high_risk_predictions().filter(received_at__gte=since)
    return explanations_precompute_guarded(
        predictions=recent, batch_size=batch_size, task=task, message=message
    )


def _quarantined(
    report: PrecomputeReport,
    version: MLModelVersion,
    rows: QuerySet,
    delivery: TaskDelivery,
    first: bool,
) -> PrecomputeReport:
    """Move the message's count to the version's key (later messages skip the version),
    raise the critical alert, and report the version's rows as skipped."""
    now = timezone.now()
    held, _ = TaskDelivery.objects.get_or_create(
        key=f"{VERSION_KEY}{version.pk}",
        defaults={
            "task": delivery.task,
            "label": f"precompute of {version}",
            "attempts": delivery.attempts,
            "first_seen": delivery.first_seen,
            "last_seen": now,
            "quarantined_at": now,
            "reason": delivery.reason,
        },
    )
    delivery.delete()
    alert_task_quarantined(model=version.model, version=version, delivery=held)
    _skip(report, version, rows)
    return PrecomputeReport()


def _skip(report: PrecomputeReport, version: MLModelVersion, rows: QuerySet) -> None:
    count = rows.count()
    report.scanned += count
    report.skipped.append(
        {"version": version.pk, "predictions": count, "reason": "precompute quarantined"}
    )


def _merge(report: PrecomputeReport, part: PrecomputeReport) -> None:
    report.scanned += part.scanned
    report.explained += part.explained
    report.batches += part.batches
    report.skipped.extend(part.skipped)
