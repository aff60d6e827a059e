"""An audit acknowledged with 202 while the broker was down, or whose worker died: the
requeue sweep enqueues it again, and the lease keeps a second message from running an
audit twice."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from fairness.models import FairnessAudit
from fairness.services import (
    fairness_audit_create,
    fairness_audit_execute_now,
    fairness_audits_pending,
)


@pytest.fixture
def version(register_trained, biased_training):
    return register_trained(biased_training, model="threat-detector")


def _age(audit, seconds, **fields):
    past = timezone.now() - timedelta(seconds=seconds)
    FairnessAudit.objects.filter(pk=audit.pk).update(created_at=past, **fields)


@pytest.mark.django_db
def test_the_sweep_finds_audits_left_pending_or_with_a_lapsed_lease(version, settings):
    fresh = fairness_audit_create(version=version, enqueue=False)
    stuck = fairness_audit_create(version=version, enqueue=False)
    _age(stuck, settings.PENDING_REQUEUE_SECONDS + 1)
    alive = fairness_audit_create(version=version, enqueue=False)
    _age(alive, 3600, status="running", heartbeat_at=timezone.now())
    dead = fairness_audit_create(version=version, enqueue=False)
    lapsed = timezone.now() - timedelta(seconds=settings.FAIRNESS_AUDIT_LEASE_SECONDS + 1)
    _age(dead, 3600, status="running", heartbeat_at=lapsed)
    done = fairness_audit_create(version=version, enqueue=False)
    _age(done, 3600, status="complete")
    assert sorted(fairness_audits_pending()) == sorted([stuck.pk, dead.pk])
    assert fresh.pk not in fairness_audits_pending()


@pytest.mark.django_db
def test_a_second_message_does_not_run_a_running_audit_twice(version, settings):
    audit = fairness_audit_create(version=version, enqueue=False)
    FairnessAudit.objects.filter(pk=audit.pk).update(status="running", heartbeat_at=timezone.now())
    assert fairness_audit_execute_now(audit_id=audit.pk) is None  # a worker holds it
    lapsed = timezone.now() - timedelta(seconds=settings.FAIRNESS_AUDIT_LEASE_SECONDS + 1)
    FairnessAudit.objects.filter(pk=audit.pk).update(heartbeat_at=lapsed)
    assert fairness_audit_execute_now(audit_id=audit.pk).status == "complete"
    assert fairness_audit_execute_now(audit_id=audit.pk) is None  # final


def _wait_for(predicate, timeout=120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_real_worker_runs_an_audit_the_broker_never_got(celery_worker, version, settings):
    from fairness.tasks import fairness_audits_requeue

    audit = fairness_audit_create(version=version, enqueue=False)  # the message was lost
    _age(audit, settings.PENDING_REQUEUE_SECONDS + 1)
    fairness_audits_requeue.delay()
    assert _wait_for(lambda: FairnessAudit.objects.get(pk=audit.pk).status == "complete")
    assert fairness_audits_pending() == []
    connection.close()
