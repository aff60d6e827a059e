"""An audit whose runs killed the worker past TASK_CRASH_LIMIT: failed, with a critical
alert, and its booster never loaded again (core.quarantine)."""

import pytest
from django.utils import timezone

from core.models import TaskDelivery
from fairness.models import FairnessAudit
from fairness.services import fairness_audit_create, fairness_audit_execute_now
from monitoring.models import Alert

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(register_trained, biased_training):
    return register_trained(biased_training, model="threat-detector")


def deaths(audit, n):
    """What n workers that died running the audit leave behind."""
    now = timezone.now()
    TaskDelivery.objects.create(
        key=f"fairness.audit:{audit.pk}",
        task="fairness.tasks.fairness_audit_execute",
        label=str(audit),
        attempts=n,
        first_seen=now,
        last_seen=now,
    )
    FairnessAudit.objects.filter(pk=audit.pk).update(status="running", heartbeat_at=None)


def test_an_audit_that_ends_leaves_no_count(version):
    audit = fairness_audit_execute_now(audit_id=fairness_audit_create(version=version).pk)
    assert audit.status == "complete"
    assert not TaskDelivery.objects.exists()


def test_a_death_below_the_limit_is_run_again_and_forgotten(version, settings):
    settings.TASK_CRASH_LIMIT = 3
    audit = fairness_audit_create(version=version, enqueue=False)
    deaths(audit, 2)
    assert fairness_audit_execute_now(audit_id=audit.pk).status == "complete"
    assert not TaskDelivery.objects.exists()


def test_an_audit_past_the_limit_is_failed_with_a_critical_alert(version, settings, monkeypatch):
    settings.TASK_CRASH_LIMIT = 3
    audit = fairness_audit_create(version=version, enqueue=False)
    deaths(audit, 3)

    def must_not_load(**kwargs):
        raise AssertionError("the booster of a quarantined audit was loaded")

    monkeypatch.setattr("fairness.services.version_load_booster", must_not_load)
    audit = fairness_audit_execute_now(audit_id=audit.pk)
    assert audit.status == "failed" and audit.result == {}
    assert audit.reasons == [
        {
            "code": "quarantined",
            "severity": "error",
            "message": "quarantined: the worker died 3 times running it (limit 3)",
        }
    ]
    row = TaskDelivery.objects.get()
    assert row.quarantined_at is not None and row.attempts == 4
    alert = Alert.objects.get(kind="quarantine")
    assert (alert.severity, alert.version) == ("critical", version)
    assert alert.title == (
        f"Quarantined fairness.tasks.fairness_audit_execute on {audit}: "
        "the worker died 3 times running it (limit 3)"
    )
    assert alert.details["key"] == f"fairness.audit:{audit.pk}"
