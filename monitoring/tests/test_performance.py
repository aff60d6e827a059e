"""Performance on labelled feedback: measured windows, insufficient labels, degradation alert."""

from datetime import timedelta

import numpy as np
import pytest

from monitoring.models import Alert, PerformanceResult
from monitoring.performance import performance_window_compute
from monitoring.tests.factories import T0, log_window, population
from registry.training import binary_metrics

pytestmark = pytest.mark.django_db
HOUR = timedelta(hours=1)


def test_it_measures_labelled_feedback_against_the_registered_metrics(register):
    version = register("1.0.0")
    y = population().y[0:1500]
    rows = log_window(version, rows=slice(0, 1500), labels=y)
    result = performance_window_compute(version=version, window_end=T0 + HOUR)
    scores = np.array([r.score for r in rows])
    expected = binary_metrics(y, scores, threshold=version.decision_threshold)
    assert result.status == "ok" and result.n_labels == 1500 and result.n_positive == int(y.sum())
    for metric in ("precision", "recall", "f1", "auc"):
        assert result.__dict__[metric] == pytest.approx(expected[metric])
    assert result.window_start == T0 + HOUR - timedelta(days=1)
    assert not Alert.objects.filter(kind="performance").exists()


def test_too_few_labels_give_no_verdict(register, settings):
    settings.PERFORMANCE_MIN_LABELS = 50
    version = register("1.0.0")
    labels = np.zeros(300, dtype=int)
    labels[:5] = 1  # 5 threats: below PERFORMANCE_MIN_CLASS_LABELS
    log_window(version, rows=slice(0, 300), labels=labels)
    result = performance_window_compute(version=version, window_end=T0 + HOUR)
    assert result.status == "insufficient_labels" and result.n_labels == 300
    assert result.precision is None and result.degraded == {}
    assert not Alert.objects.exists()


def test_feedback_that_contradicts_the_model_raises_a_degradation_alert(register):
    version = register("1.0.0")
    # Analysts overturn the model: every verdict is the opposite of the true label.
    y = 1 - population().y[0:1500]
    log_window(version, rows=slice(0, 1500), labels=y)
    result = performance_window_compute(version=version, window_end=T0 + HOUR)
    assert result.status == "ok"
    assert {"auc", "recall"} <= set(result.degraded)
    assert result.degraded["auc"]["drop"] > version.model.degradation_threshold
    alert = Alert.objects.get(kind="performance", version=version)
    assert alert.severity == "critical" and alert.dedupe_key == f"performance:{version.pk}"
    assert alert.details["labels"] == 1500
    # Re-running the window updates the stored result and the same alert.
    performance_window_compute(version=version, window_end=T0 + HOUR)
    assert PerformanceResult.objects.count() == 1
    alert.refresh_from_db()
    assert alert.count == 2 and Alert.objects.count() == 1
