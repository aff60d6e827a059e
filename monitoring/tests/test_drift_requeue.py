"""A drift run whose worker died: the lease, the takeover that resumes it, the requeue sweep."""

from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.drift_jobs import (
    _claim,
    drift_run_create,
    drift_run_execute,
    drift_run_lease_left,
    drift_runs_pending,
    drift_window_compute,
)
from monitoring.models import Alert, DriftResult, DriftRun, PerformanceResult
from monitoring.performance import performance_window_compute
from monitoring.tests.factories import T0, drifted_scenario, hourly_windows, log_window  # noqa: F401

pytestmark = pytest.mark.usefixtures("hourly_windows")
HOUR = timedelta(hours=1)


def _four_windows(register):
    version = register("1.0.0")
    for hour in range(4):
        scenario = drifted_scenario() if hour else None
        log_window(
            version, rows=slice(1500 * hour, 1500 * (hour + 1)), start=T0 + hour * HOUR,
            scenario=scenario,
        )  # fmt: skip
    run = drift_run_create(
        model=version.model, start=T0, end=T0 + 4 * HOUR, trigger="cli", enqueue=False
    )
    return version, run


def _lapse(run, settings):
    past = timezone.now() - timedelta(seconds=settings.DRIFT_RUN_LEASE_SECONDS + 1)
    DriftRun.objects.filter(pk=run.pk).update(heartbeat_at=past)


def test_a_run_whose_worker_died_is_taken_over_and_resumed_without_double_counting(
    register, settings
):
    version, run = _four_windows(register)
    # A worker claimed the run, stored two windows, then died.
    assert _claim(run.pk)
    for hour in (0, 1):
        end = T0 + (hour + 1) * HOUR
        drift_window_compute(version=version, window_start=end - HOUR, window_end=end, run=run)
        performance_window_compute(version=version, window_end=end, run=run)
    first = dict(DriftResult.objects.filter(run=run).values_list("window_start", "computed_at"))
    assert drift_run_execute(run_id=run.pk) is None  # its lease is still live
    _lapse(run, settings)

    done = drift_run_execute(run_id=run.pk)
    assert done.status == "succeeded" and done.attempts == 2
    assert (done.windows_done, done.rows_read) == (4, 6000)
    results = DriftResult.objects.filter(version=version, run=run)
    assert results.count() == 4 and PerformanceResult.objects.filter(run=run).count() == 4
    for window_start, computed_at in first.items():
        assert results.get(window_start=window_start).computed_at == computed_at  # not redone
    # bytes_out drifted in windows 1, 2 and 3: counted once each.
    assert Alert.objects.get(dedupe_key=f"drift:{version.pk}:bytes_out").count == 3


def test_a_live_lease_keeps_the_run_and_says_how_long(register, settings):
    _, run = _four_windows(register)
    assert _claim(run.pk)
    assert drift_run_execute(run_id=run.pk) is None
    left = drift_run_lease_left(run_id=run.pk)
    assert 0 < left <= settings.DRIFT_RUN_LEASE_SECONDS
    _lapse(run, settings)
    assert drift_run_lease_left(run_id=run.pk) == 0
    assert drift_run_execute(run_id=run.pk).status == "succeeded"
    assert drift_run_lease_left(run_id=run.pk) is None


def test_the_sweep_finds_runs_left_queued_or_with_a_lapsed_lease(register, settings):
    settings.PENDING_REQUEUE_SECONDS = 300
    version, fresh = _four_windows(register)
    old = drift_run_create(
        model=version.model, start=T0, end=T0 + HOUR, trigger="api", enqueue=False
    )
    DriftRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=6))
    running = drift_run_create(
        model=version.model, start=T0, end=T0 + HOUR, trigger="api", enqueue=False
    )
    DriftRun.objects.filter(pk=running.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert _claim(running.pk)
    assert drift_runs_pending() == [old.pk]
    _lapse(running, settings)
    assert drift_runs_pending() == [running.pk, old.pk]
    assert fresh.pk not in drift_runs_pending()
