"""The crash guard: a body whose process dies (SIGKILL in a forked child, as a SIGSEGV
would) is counted, and past TASK_CRASH_LIMIT deaths it is quarantined, not run."""

import multiprocessing
import os
import signal

import pytest
from django.core.management import call_command
from django.db import connections

from core.models import AuditEvent, TaskDelivery
from core.quarantine import crash_guarded

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "test.body:7"


def guarded(body, on_quarantine=lambda delivery, first: ("quarantined", first)):
    return crash_guarded(
        key=KEY, task="tests.task", label="object 7", body=body, on_quarantine=on_quarantine
    )


def die_in_a_child() -> int | None:
    """Run the guarded body in a forked process that it kills; its exit code."""
    connections.close_all()  # the child opens its own connection

    def child():
        guarded(lambda: os.kill(os.getpid(), signal.SIGKILL), lambda d, first: os._exit(3))
        os._exit(0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    return process.exitcode


def attempts() -> int | None:
    row = TaskDelivery.objects.filter(key=KEY).first()
    return row.attempts if row else None


def test_each_death_is_counted_and_past_the_limit_the_body_is_not_run(settings):
    settings.TASK_CRASH_LIMIT = 3
    for death in (1, 2, 3):
        assert die_in_a_child() == -signal.SIGKILL
        assert attempts() == death  # committed before the body killed its process

    ran = []
    assert guarded(lambda: ran.append(1)) == ("quarantined", True)
    assert ran == []
    row = TaskDelivery.objects.get(key=KEY)
    assert row.quarantined_at is not None and row.attempts == 4
    assert row.reason == "the worker died 3 times running it (limit 3)"
    assert (row.task, row.label) == ("tests.task", "object 7")

    # Later deliveries skip it too, and leave the count as it was.
    assert guarded(lambda: ran.append(1)) == ("quarantined", False)
    assert die_in_a_child() == 3  # the body is not run, so the child lives to exit
    assert ran == [] and attempts() == 4


def test_an_end_with_a_result_or_an_exception_is_no_death(settings):
    settings.TASK_CRASH_LIMIT = 2
    assert die_in_a_child() == -signal.SIGKILL
    assert attempts() == 1
    assert guarded(lambda: "done") == "done"  # the redelivery ran to its end
    assert attempts() is None

    assert die_in_a_child() == -signal.SIGKILL
    with pytest.raises(ValueError):
        guarded(lambda: int("x"))  # Celery retries or fails it: no death
    assert attempts() is None
    for _ in range(5):
        assert guarded(lambda: "done") == "done"
    assert attempts() is None


def test_a_release_forgets_the_quarantine_and_is_audited(settings):
    settings.TASK_CRASH_LIMIT = 0
    assert guarded(lambda: "ran") == ("quarantined", True)
    call_command("task_quarantine", release=KEY, note="artifact replaced")
    assert attempts() is None
    event = AuditEvent.objects.get(action="task.quarantine_released")
    assert event.payload["key"] == KEY and event.payload["note"] == "artifact replaced"
    settings.TASK_CRASH_LIMIT = 3
    assert guarded(lambda: "ran") == "ran"
