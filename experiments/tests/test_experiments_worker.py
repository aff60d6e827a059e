"""The scheduled guardrail, through a real Celery worker, rolls a failing challenger back."""

import time

import pytest

from core.models import AuditEvent
from registry.models import Experiment, TrafficSplit
from registry.tests.ab_support import live_fixture, log_arm  # noqa: F401
from registry.traffic import traffic_set

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(predicate, seconds=90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_the_beat_task_rolls_back_a_significantly_worse_challenger(live, approver, celery_worker):
    from experiments.tasks import experiment_guardrails_check

    champion, challenger = live
    traffic_set(
        model=champion.model, challenger=challenger, challenger_bp=3000, shadows=[], actor=approver
    )
    log_arm(champion, "champion", tp=420, fp=80)
    log_arm(challenger, "challenger", tp=280, fp=220)
    experiment_guardrails_check.delay()
    assert wait_for(lambda: Experiment.objects.filter(status="rolled_back").exists())
    split = TrafficSplit.objects.get()
    assert split.challenger is None and split.champion_bp == 10_000
    event = AuditEvent.objects.get(action="traffic.auto_rollback")
    assert "significantly worse" in event.payload["reasons"][0]
    assert event.actor_label == "system"


def test_the_beat_schedule_exists():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.filter(task="experiments.tasks.experiment_guardrails_check")
    if not task.exists():
        # transactional tests flush migration data; re-run the migration's function
        from importlib import import_module

        from django.apps import apps as global_apps

        import_module("registry.migrations.0005_ab_guardrail_schedule").schedule(global_apps, None)
        moved = import_module("experiments.migrations.0001_guardrail_schedule_moved")
        moved.forward(global_apps, None)
    assert task.get().enabled
