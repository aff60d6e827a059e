"""The quarterly schedule: a beat entry in the database, run by a real Celery worker."""

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from fairness import services
from fairness.models import FairnessAudit
from fairness.schedule import QUARTERLY, SCHEDULE_NAME, TASK_NAME, schedule_sync
from fairness.tests.conftest import log_traffic, traffic
from monitoring.models import Alert


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.django_db
def test_the_quarterly_schedule_is_an_editable_periodic_task():
    from django_celery_beat.models import PeriodicTask

    from govsite.celery import app

    task = schedule_sync()
    assert schedule_sync().pk == task.pk  # idempotent
    assert PeriodicTask.objects.filter(name=SCHEDULE_NAME).count() == 1
    assert task.task == TASK_NAME and task.enabled
    assert {k: getattr(task.crontab, k) for k in QUARTERLY} == QUARTERLY
    assert json.loads(task.kwargs) == {"source": "logged", "days": 92, "attributes": ["geo_region"]}
    app.loader.import_default_modules()
    assert TASK_NAME in app.tasks
    # An edit in the admin survives a later sync.
    task.kwargs = json.dumps({"source": "evaluation"})
    task.save()
    assert json.loads(schedule_sync().kwargs) == {"source": "evaluation"}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_scheduled_audit_runs_on_a_worker_and_a_failure_raises_a_critical_alert(
    celery_worker, register_trained, promote, biased_training, fair_training
):
    from fairness.tasks import fairness_schedule_run

    versions = {}
    for name, training in [
        ("biased", biased_training),
        ("fair", fair_training),
        ("silent", fair_training),
    ]:
        versions[name] = promote(register_trained(training, model=name, gate=False))
    # Events depend on the hour of day and the weekday they fall on, so start on a Monday
    # at midnight: the same events (and verdicts) whatever time the suite runs.
    day = (timezone.now() - timedelta(days=14)).replace(hour=0, minute=0, second=0, microsecond=0)
    start = day - timedelta(days=day.weekday())
    log_traffic(versions["biased"], traffic(20_000, proxy=0.25, start=start), tag="b")
    log_traffic(versions["fair"], traffic(20_000, proxy=0.0, start=start), tag="f")

    fairness_schedule_run.delay()  # what beat sends each quarter

    def finished():
        audits = FairnessAudit.objects.filter(trigger="schedule")
        return audits.count() == 2 and all(a.is_final for a in audits)

    assert wait_for(finished)
    biased = FairnessAudit.objects.get(version=versions["biased"])
    fair = FairnessAudit.objects.get(version=versions["fair"])
    assert (biased.status, biased.verdict, biased.source) == ("complete", "fail", "logged")
    assert (fair.status, fair.verdict) == ("complete", "pass")
    assert biased.period_end - biased.period_start == timedelta(days=92)

    alert = Alert.objects.get(dedupe_key="fairness:biased:1.0.0")
    assert (alert.severity, alert.kind, alert.status) == ("critical", "fairness", "open")
    assert alert.version == versions["biased"] and alert.details["audit"] == biased.pk
    assert "APAC" in " ".join(alert.details["reasons"])
    assert not Alert.objects.filter(dedupe_key="fairness:fair:1.0.0").exists()
    skipped = Alert.objects.get(dedupe_key="fairness:silent:1.0.0")
    assert skipped.severity == "warning" and "skipped" in skipped.title
    assert not FairnessAudit.objects.filter(version=versions["silent"]).exists()
    # A repeated run in the same hour (a redelivered beat message) adds nothing.
    assert services.fairness_schedule_run() == []
    assert FairnessAudit.objects.filter(trigger="schedule").count() == 2
