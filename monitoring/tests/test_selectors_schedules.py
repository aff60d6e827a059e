"""Approval evidence reads the drift status; beat schedules per model; the drift_run command."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from monitoring.drift_jobs import drift_schedule_tick, drift_window_compute
from monitoring.models import DriftResult, DriftRun
from monitoring.schedules import SYNC_NAME, drift_schedule_sync, drift_schedules_sync
from monitoring.selectors import version_drift_status
from monitoring.tests.factories import (
    T0,
    drifted_scenario,
    hourly_windows,  # noqa: F401
    log_window,
)
from registry.evidence import evidence_snapshot

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hourly_windows")]
HOUR = timedelta(hours=1)


def test_a_version_without_monitoring_has_no_drift_status(register):
    assert version_drift_status(version=register("1.0.0")) is None


def test_the_approval_evidence_shows_the_drift_status(register):
    version = register("1.0.0")
    log_window(version, rows=slice(0, 1500), scenario=drifted_scenario())
    drift_window_compute(version=version, window_start=T0, window_end=T0 + HOUR)
    status = version_drift_status(version=version)
    assert status["drift"] is True
    assert {"bytes_out", "geo_velocity"} <= set(status["drifted_features"])
    assert {a["kind"] for a in status["open_alerts"]} == {"drift"}
    evidence = evidence_snapshot(version)
    assert evidence["drift"]["candidate"]["latest_verdict"]["n_rows"] == 1500


def test_every_model_gets_an_editable_beat_schedule(register, settings):
    assert PeriodicTask.objects.filter(name=SYNC_NAME).exists()  # data migration
    version = register("1.0.0")
    model = version.model
    (task,) = drift_schedules_sync()
    assert task.task == "monitoring.tasks.drift_schedule_model" and task.args == f"[{model.pk}]"
    assert (task.interval.every, task.interval.period) == (60, "minutes")
    # An operator's edit in the admin survives a re-sync...
    task.enabled = False
    task.save()
    assert drift_schedule_sync(model=model).enabled is False
    # ...and a new window length on the model moves the interval.
    model.drift_window_minutes = 30
    model.save()
    assert drift_schedule_sync(model=model).interval.every == 30
    assert PeriodicTask.objects.filter(task="monitoring.tasks.drift_schedule_model").count() == 1


def test_the_scheduled_tick_runs_each_completed_window_once(register):
    version = register("1.0.0")
    log_window(version, rows=slice(0, 1500))
    first = drift_schedule_tick(model=version.model, now=T0 + HOUR + timedelta(minutes=5))
    assert first.status == "succeeded" and (first.start, first.end) == (T0, T0 + HOUR)
    assert drift_schedule_tick(model=version.model, now=T0 + HOUR + timedelta(minutes=30)) is None
    log_window(version, rows=slice(1500, 3000), start=T0 + 2 * HOUR)
    later = drift_schedule_tick(model=version.model, now=T0 + 3 * HOUR + timedelta(minutes=1))
    assert (later.start, later.end) == (T0 + HOUR, T0 + 3 * HOUR)
    statuses = DriftResult.objects.filter(version=version).values_list("status", flat=True)
    # The quiet hour in between is stored as such, not skipped.
    assert list(statuses) == ["ok", "insufficient_data", "ok"]


def test_the_command_runs_a_range_with_a_summary(register):
    version = register("1.0.0")
    log_window(version, rows=slice(0, 1500), scenario=drifted_scenario())
    out = StringIO()
    call_command(
        "drift_run", "threat", "--start", "2026-03-02T00:00:00", "--end", "2026-03-02T02:00",
        "--sync-schedules", stdout=out, stderr=StringIO(),
    )  # fmt: skip
    text = out.getvalue()
    assert "run #" in text and "succeeded: 2 window(s), 1500 predictions" in text
    assert "1 window(s) with drift" in text
    assert DriftRun.objects.get().trigger == "cli"


def test_the_command_refuses_bad_input(register):
    from django.core.management.base import CommandError

    register("1.0.0")
    with pytest.raises(CommandError, match="no model"):
        call_command("drift_run", "nope")
    with pytest.raises(CommandError, match="ISO"):
        call_command("drift_run", "threat", "--start", "monday")
    with pytest.raises(CommandError, match="before"):
        call_command("drift_run", "threat", "--start", "2026-03-02", "--end", "2026-03-01")
    assert not DriftRun.objects.exists()
