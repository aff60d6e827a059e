"""Drift jobs: per-window results, idempotent re-runs, insufficient data, alerts."""

from datetime import timedelta

import numpy as np
import pytest

from monitoring import drift_core
from monitoring.drift_jobs import (
    detector_feed,
    drift_run_create,
    drift_run_execute,
    drift_window_compute,
    window_arrays,
    window_floor,
    windows_between,
)
from monitoring.models import Alert, DetectorState, DriftResult, DriftRun
from monitoring.tests.factories import (
    DRIFTED,
    T0,
    drifted_scenario,
    hourly_windows,  # noqa: F401
    log_window,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hourly_windows")]
HOUR = timedelta(hours=1)


def test_windows_are_aligned_to_the_epoch():
    assert window_floor(T0 + timedelta(minutes=59, seconds=59), 60) == T0
    windows = windows_between(T0 + timedelta(minutes=30), T0 + 3 * HOUR, 60)
    assert windows == [(T0, T0 + HOUR), (T0 + HOUR, T0 + 2 * HOUR), (T0 + 2 * HOUR, T0 + 3 * HOUR)]


def test_it_reads_a_window_as_one_matrix_in_event_order(register):
    version = register("1.0.0")
    rows = log_window(version, rows=slice(0, 300))
    window = window_arrays(version=version, start=T0, end=T0 + HOUR)
    assert window.X.shape == (300, len(version.feature_schema))
    X, scores = window.X[window.order], window.scores[window.order]
    assert np.array_equal(X[17], rows[17].feature_vector())
    assert scores.tolist() == [r.score for r in rows]


def test_it_flags_the_drifted_features_and_alerts_once_per_feature(register):
    version = register("1.0.0")
    log_window(version, rows=slice(0, 2000), scenario=drifted_scenario())
    result = drift_window_compute(version=version, window_start=T0, window_end=T0 + HOUR)
    flagged = set(result.drifted_features) - {"score"}
    assert flagged == set(DRIFTED)
    assert result.drift is True and result.n_rows == 2000
    alerts = Alert.objects.filter(kind="drift", version=version)
    assert {a.details["feature"] for a in alerts} >= set(DRIFTED)
    # Re-running the window replaces its result and updates the same alerts.
    again = drift_window_compute(version=version, window_start=T0, window_end=T0 + HOUR)
    assert again.pk == result.pk and DriftResult.objects.count() == 1
    assert Alert.objects.filter(kind="drift", version=version).count() == alerts.count()
    assert Alert.objects.get(dedupe_key=f"drift:{version.pk}:bytes_out").count == 2


def test_a_window_without_drift_flags_nothing(register):
    version = register("1.0.0")
    log_window(version, rows=slice(2000, 4000))
    result = drift_window_compute(version=version, window_start=T0, window_end=T0 + HOUR)
    assert result.status == "ok" and result.drifted_features == [] and result.drift is False
    assert not Alert.objects.exists()


def test_a_small_window_says_insufficient_data_and_raises_nothing(register):
    version = register("1.0.0")
    log_window(version, rows=slice(0, 40), scenario=drifted_scenario())
    result = drift_window_compute(version=version, window_start=T0, window_end=T0 + HOUR)
    assert result.status == drift_core.INSUFFICIENT and result.drift is None
    assert result.features["bytes_out"]["status"] == drift_core.INSUFFICIENT
    assert result.features["bytes_out"]["n"] == 40
    assert not Alert.objects.exists()


def test_an_empty_window_is_insufficient_data(register):
    version = register("1.0.0")
    result = drift_window_compute(version=version, window_start=T0, window_end=T0 + HOUR)
    assert result.status == drift_core.INSUFFICIENT and result.n_rows == 0


def test_drift_alerts_resolve_after_clear_windows(register, settings):
    settings.ALERT_CLEAR_WINDOWS = 2
    version = register("1.0.0")
    log_window(version, rows=slice(0, 1500), scenario=drifted_scenario())
    for hour in (1, 2):
        log_window(version, rows=slice(1500 * hour, 1500 * (hour + 1)), start=T0 + hour * HOUR)
    run = drift_run_create(
        model=version.model, start=T0, end=T0 + 3 * HOUR, trigger="cli", enqueue=False
    )
    done = drift_run_execute(run_id=run.pk)
    assert done.status == "succeeded" and done.windows_done == 3 and done.rows_read == 4500
    alert = Alert.objects.get(dedupe_key=f"drift:{version.pk}:bytes_out")
    assert alert.status == "resolved" and alert.resolved_at == T0 + 3 * HOUR
    assert alert.first_seen == T0 + HOUR
    # A second execution of the same run is refused (the run was claimed).
    assert drift_run_execute(run_id=run.pk) is None


def test_the_detector_is_fed_each_window_once(register):
    version = register("1.0.0")
    scores = np.full(200, 0.1)
    assert detector_feed(version=version, window_end=T0 + HOUR, scores=scores) == 0
    state = DetectorState.objects.get(version=version)
    assert state.state["n"] == 200
    detector_feed(version=version, window_end=T0 + HOUR, scores=scores)
    state.refresh_from_db()
    assert state.state["n"] == 200
    changes = detector_feed(version=version, window_end=T0 + 2 * HOUR, scores=np.full(2000, 0.6))
    assert changes >= 1
    assert DetectorState.objects.get(version=version).changes == changes


def test_a_run_refuses_an_empty_or_huge_range(register):
    from registry.services import GovernanceError

    version = register("1.0.0")
    with pytest.raises(GovernanceError):
        drift_run_create(model=version.model, start=T0, end=T0, trigger="api", enqueue=False)
    with pytest.raises(GovernanceError):
        drift_run_create(
            model=version.model, start=T0, end=T0 + timedelta(days=90), trigger="api", enqueue=False
        )
    assert not DriftRun.objects.exists()


def test_by_default_each_window_compares_the_trailing_day(register, settings):
    settings.DRIFT_SPAN_MINUTES = 1440
    version = register("1.0.0")
    log_window(version, rows=slice(0, 1500))
    log_window(version, rows=slice(1500, 3000), start=T0 + HOUR)
    drift_window_compute(version=version, window_start=T0, window_end=T0 + HOUR)
    result = drift_window_compute(version=version, window_start=T0 + HOUR, window_end=T0 + 2 * HOUR)
    assert result.n_rows == 3000 and result.span_start == T0 + 2 * HOUR - timedelta(days=1)
    assert result.window_start == T0 + HOUR
    # The detector still sees each score once: only the window's own predictions.
    assert DetectorState.objects.get(version=version).state["seen"] == 3000


def test_clock_driven_features_are_shown_but_not_alerted(register, settings):
    from registry import synthetic

    version = register("1.0.0")
    shifted = synthetic.Scenario(drifts=(synthetic.Drift.sudden("login_hour", 2.0, at=0.0),))
    log_window(version, rows=slice(0, 1500), scenario=shifted)
    result = drift_window_compute(version=version, window_start=T0, window_end=T0 + HOUR)
    assert "login_hour" in result.drifted_features
    assert not Alert.objects.filter(dedupe_key=f"drift:{version.pk}:login_hour").exists()
    settings.DRIFT_SEASONAL_FEATURES = []
    drift_window_compute(version=version, window_start=T0, window_end=T0 + HOUR)
    assert Alert.objects.filter(dedupe_key=f"drift:{version.pk}:login_hour").exists()


def test_no_alerts_until_the_traffic_fills_a_whole_span(register, settings):
    settings.DRIFT_SPAN_MINUTES = 1440
    version = register("1.0.0")
    log_window(version, rows=slice(0, 1500), scenario=drifted_scenario())
    first = drift_window_compute(version=version, window_start=T0, window_end=T0 + HOUR)
    assert first.dataset["partial_span"] is True and "bytes_out" in first.drifted_features
    assert not Alert.objects.filter(kind="drift").exists()
    day = timedelta(days=1)
    log_window(version, rows=slice(1500, 3000), start=T0 + day, scenario=drifted_scenario())
    later = drift_window_compute(version=version, window_start=T0 + day, window_end=T0 + day + HOUR)
    assert later.dataset["partial_span"] is False
    assert Alert.objects.filter(dedupe_key=f"drift:{version.pk}:bytes_out").exists()
