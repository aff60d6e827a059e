"""Demo additions for the fairness pages (idempotent): the quarterly schedule, and an
audit on logged predictions with analyst verdicts for every version that has them."""

from datetime import timedelta

from django.db.models import Max, Min

from fairness.models import FairnessAudit
from fairness.schedule import schedule_sync
from fairness.services import (
    AuditInputError,
    fairness_audit_check_data,
    fairness_audit_create,
    fairness_audit_execute_now,
)
from registry.models import MLModelVersion

SERVED = ("champion", "challenger")


def build(*, stdout) -> None:
    task = schedule_sync()
    stdout.write(f"fairness schedule: {task.name} ({task.crontab})")
    for version in MLModelVersion.objects.select_related("model").order_by("model__name", "pk"):
        _audit_logged(version, stdout)


def _audit_logged(version: MLModelVersion, stdout) -> None:
    if version.fairness_audits.filter(
        source=FairnessAudit.Source.LOGGED, status=FairnessAudit.Status.COMPLETE
    ).exists():
        return
    # Served rows only (fairness.services._served_rows): shadows are not audited on logs.
    span = version.predictions.filter(label__isnull=False, role__in=SERVED).aggregate(
        start=Min("created_at"), end=Max("created_at")
    )
    if span["start"] is None:
        return
    params = {
        "source": FairnessAudit.Source.LOGGED,
        "attributes": ["geo_region"],
        "period_start": span["start"],
        # The period's end is exclusive; include the last labelled event.
        "period_end": span["end"] + timedelta(seconds=1),
    }
    try:
        fairness_audit_check_data(version=version, **params)
    except AuditInputError as exc:
        stdout.write(f"no logged-predictions audit of {version}: {exc.message}")
        return
    created = fairness_audit_create(version=version, enqueue=False, **params)
    audit = fairness_audit_execute_now(audit_id=created.pk)
    if audit is None:  # a worker claimed it first
        return
    rows = audit.data_summary.get("rows", 0)
    stdout.write(
        f"fairness audit #{audit.pk} of {version} on {rows} logged predictions: {audit.verdict}"
    )
