"""A real Celery worker SIGKILLed while a fairness audit loads its booster: the death is
counted, and the redelivery, past TASK_CRASH_LIMIT, fails the audit with a critical
alert instead of loading the booster again, while the queue behind it goes on.

The booster load is made to hang, not to crash: the model artifact is replaced by a
named pipe, which the worker blocks on opening until the test kills it.
"""

import os
import time
from pathlib import Path

import pytest

from tests.test_faults import (
    Processes,
    app_env,
    free_port,
    needs_postgres,
    needs_redis,
    wait_until,
)

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

VISIBILITY = 3  # seconds before Redis hands an unacknowledged message to another worker
LEASE = 1  # seconds a running audit's lease lasts without progress


@pytest.fixture
def procs(tmp_path):
    processes = Processes(tmp_path)
    yield processes
    processes.stop_all()


def _refreshed(obj):
    obj.refresh_from_db()
    return obj


def _model_file(version) -> Path:
    from django.conf import settings

    [path] = Path(settings.ARTIFACT_ROOT).glob(f"{version.model_hash[:2]}/{version.model_hash}.*")
    return path


@needs_postgres
@needs_redis
def test_a_fairness_audit_that_kills_its_worker_is_counted_then_quarantined(register, procs):
    import redis

    from core.models import TaskDelivery
    from fairness.models import FairnessAudit
    from fairness.services import fairness_audit_create
    from fairness.tasks import fairness_audit_execute
    from govsite.celery import app
    from monitoring.models import Alert

    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    procs.redis(port)
    env = app_env(
        broker,
        CELERY_VISIBILITY_TIMEOUT=VISIBILITY,
        FAIRNESS_AUDIT_LEASE_SECONDS=LEASE,
        TASK_CRASH_LIMIT=1,
    )
    first = procs.worker("first", env, wait=False)
    version = register("1.0.0")
    crashing = fairness_audit_create(version=version, enqueue=False)
    queued_behind = fairness_audit_create(version=version, enqueue=False)
    artifact = _model_file(version)
    content = artifact.read_bytes()
    artifact.unlink()
    os.mkfifo(artifact)  # opening it blocks: the booster load hangs inside the guard
    procs.ready("first")
    with app.connection_for_write(broker) as conn:
        fairness_audit_execute.apply_async((crashing.pk,), connection=conn)

    key = f"fairness.audit:{crashing.pk}"
    wait_until(
        lambda: TaskDelivery.objects.filter(key=key, attempts=1).exists(),
        60,
        "the guarded audit to start",
        procs.logs,
    )
    time.sleep(0.5)  # into the booster load, blocked on the pipe
    procs.kill(first)  # SIGKILL to the whole group, as a SIGSEGV of the pool child would
    assert _refreshed(crashing).status == "running"
    death = TaskDelivery.objects.get(key=key)
    assert death.attempts == 1 and death.quarantined_at is None  # counted before loading
    taken = redis.Redis(port=port).zrange("unacked_index", 0, -1, withscores=True)
    assert len(taken) == 1

    # The artifact is whole again: the quarantine, not the data, stops the redelivery.
    artifact.unlink()
    artifact.write_bytes(content)
    with app.connection_for_write(broker) as conn:
        fairness_audit_execute.apply_async((queued_behind.pk,), connection=conn)
    wait_until(lambda: time.time() > taken[0][1] + VISIBILITY + 0.5, 30, "the visibility timeout")
    procs.worker("second", env)
    wait_until(
        lambda: (
            _refreshed(crashing).status == "failed"
            and _refreshed(queued_behind).status == "complete"
        ),
        120,
        "the redelivered audit and the one behind it",
        procs.logs,
    )
    assert crashing.reasons[0]["code"] == "quarantined", crashing.reasons
    assert crashing.result == {} and crashing.reasons[0]["message"] == (
        "quarantined: the worker died once running it (limit 1)"
    )
    held = TaskDelivery.objects.get()
    assert held.key == key and held.quarantined_at is not None and held.attempts == 2
    alert = Alert.objects.get(kind="quarantine")
    assert alert.severity == "critical" and alert.version == version
    assert "fairness.tasks.fairness_audit_execute" in alert.title and str(crashing) in alert.title
    assert queued_behind.verdict  # the queue went on, and left no count behind
    assert FairnessAudit.objects.filter(status="running").count() == 0
