"""The demo step runs the drift jobs over the logged traffic once, however often it is called."""

from datetime import timedelta
from io import StringIO

import pytest
from django_celery_beat.models import PeriodicTask

from monitoring import demo
from monitoring.models import Alert, DriftResult, DriftRun
from monitoring.tests.factories import (
    T0,
    drifted_scenario,
    hourly_windows,  # noqa: F401
    log_window,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hourly_windows")]
HOUR = timedelta(hours=1)


def test_the_demo_runs_every_window_with_traffic_once(register):
    version = register("1.0.0")
    log_window(version, rows=slice(0, 1500))
    log_window(version, rows=slice(1500, 3000), start=T0 + 2 * HOUR, scenario=drifted_scenario())
    out = StringIO()
    demo.build(stdout=out)
    assert DriftResult.objects.filter(version=version).count() == 3
    assert PeriodicTask.objects.filter(name="drift: threat").exists()
    text = out.getvalue()
    assert "drift: threat: 3 windows" in text
    assert "alert [critical, open] threat 1.0.0: bytes_out drifted" in text
    assert "first seen Mon 2026-03-02 03:00 UTC" in text
    counts = {a.pk: a.count for a in Alert.objects.all()}
    again = StringIO()
    demo.build(stdout=again)
    assert DriftRun.objects.count() == 1
    assert {a.pk: a.count for a in Alert.objects.all()} == counts
    assert "drift: threat" not in again.getvalue() and "bytes_out drifted" in again.getvalue()
