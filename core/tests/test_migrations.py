"""Upgrading a deployment whose audit trail and outbox still belonged to registry."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_celery_beat.models import PeriodicTask as Task

from core.audit import audit_record, audit_verify
from core.models import AuditEvent, Notification

BEFORE = [
    ("registry", "0006_notifications_requeue_schedule"),
    ("core", None),
    ("experiments", None),
]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    nodes = [(app, name) for app, name in targets if name is not None]
    return executor.loader.project_state(nodes).apps


def _latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_the_move_to_core_keeps_rows_chain_grants_and_schedule():
    audit_record(action="before.one", payload={"n": 1})
    audit_record(action="before.two")
    old = _migrate(BEFORE)
    OldNotification = old.get_model("registry", "Notification")
    OldNotification.objects.create(event="e", subject="queued before", body="b")
    ContentType = old.get_model("contenttypes", "ContentType")
    assert ContentType.objects.filter(app_label="registry", model="auditevent").exists()
    # The entries registry's migrations made (re-made here when an earlier transactional
    # test flushed them); an operator's change to one survives the move.
    PeriodicTask = old.get_model("django_celery_beat", "PeriodicTask")
    every, _ = old.get_model("django_celery_beat", "IntervalSchedule").objects.get_or_create(
        every=1, period="minutes"
    )
    for name, task in (
        ("registry: requeue pending notifications", "registry.tasks.notifications_requeue"),
        (
            "A/B guardrails: roll back a failing challenger",
            "registry.tasks.experiment_guardrails_check",
        ),
    ):
        PeriodicTask.objects.update_or_create(name=name, defaults={"task": task, "interval": every})
    PeriodicTask.objects.filter(task="registry.tasks.notifications_requeue").update(enabled=False)

    _migrate(_latest())

    assert list(AuditEvent.objects.values_list("action", flat=True)) == [
        "before.one",
        "before.two",
    ]
    audit_record(action="after.move")
    report = audit_verify()
    assert report.ok and report.checked == 3
    assert Notification.objects.get().subject == "queued before"
    auditor = Group.objects.get(name="Auditor")
    assert auditor.permissions.filter(
        content_type__app_label="core", codename="export_audit"
    ).exists()
    moved = Task.objects.get(name="core: requeue pending notifications")
    assert moved.task == "core.tasks.notifications_requeue" and not moved.enabled
    guardrail = Task.objects.get(name="A/B guardrails: roll back a failing challenger")
    assert guardrail.task == "experiments.tasks.experiment_guardrails_check"
