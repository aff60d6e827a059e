"""Drift runs through a real Celery worker (Redis and PostgreSQL in CI, else the embedded
defaults): exact drifted features, alert notifications, detector state across restarts."""

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from core.models import Notification
from monitoring import drift_core
from monitoring.drift_jobs import drift_run_create, window_arrays
from monitoring.models import Alert, DetectorState, DriftResult, DriftRun
from monitoring.tests.factories import (
    DRIFTED,
    T0,
    drifted_scenario,
    hourly_windows,  # noqa: F401
    log_window,
)

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("hourly_windows"),
]
HOUR = timedelta(hours=1)
FINISHED = (DriftRun.Status.SUCCEEDED, DriftRun.Status.FAILED)


def wait_for_run(run: DriftRun, timeout: float = 120.0) -> DriftRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in FINISHED:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run #{run.pk} still {run.status} after {timeout}s")


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(settings):
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    yield _Hook.received
    server.shutdown()


def test_a_worker_run_flags_exactly_the_drifted_features(register, analyst, celery_worker, webhook):
    version = register("1.0.0")
    log_window(version, rows=slice(0, 2000))
    log_window(version, rows=slice(2000, 4000), start=T0 + HOUR, scenario=drifted_scenario())
    run = drift_run_create(model=version.model, start=T0, end=T0 + 2 * HOUR, trigger="api")
    run = wait_for_run(run)
    assert run.status == "succeeded", run.message
    assert (run.windows_done, run.rows_read) == (2, 4000)

    clean, drifted = DriftResult.objects.filter(version=version).order_by("window_start")
    assert clean.status == "ok" and clean.drifted_features == [] and clean.drift is False
    features = set(drifted.drifted_features) - {"score"}
    assert features == set(DRIFTED)
    for name in version.feature_names:
        assert drifted.features[name]["status"] == drift_core.OK
        assert drifted.features[name]["drifted"] is (name in DRIFTED)

    alerted = {a.details["feature"] for a in Alert.objects.filter(kind="drift")}
    assert alerted - {"score"} == set(DRIFTED)
    # Each new alert is announced once, by the worker, after the job committed.
    sent = Notification.objects.filter(event="alert.raised", status="sent")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sent.count() < len(alerted):
        time.sleep(0.2)
    hooked = {m["data"]["dedupe_key"] for m in webhook}
    assert hooked == {f"drift:{version.pk}:{f}" for f in alerted}
    assert sent.count() == len(alerted)


def _windows_scores(version, hours: int) -> np.ndarray:
    windows = [
        window_arrays(version=version, start=T0 + h * HOUR, end=T0 + (h + 1) * HOUR)
        for h in range(hours)
    ]
    return np.concatenate([w.scores[w.order] for w in windows])


def test_the_score_detector_state_survives_a_worker_restart(register, transactional_db):
    from celery.contrib.testing.worker import start_worker

    from govsite.celery import app

    version = register("1.0.0")
    for hour in range(4):
        scenario = drifted_scenario() if hour >= 2 else None
        log_window(
            version, rows=slice(1500 * hour, 1500 * (hour + 1)), start=T0 + hour * HOUR,
            scenario=scenario,
        )  # fmt: skip
    app.control.purge()
    for first, last in ((0, 2), (2, 4)):
        # A fresh worker each time: nothing but the database carries the detector over.
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
            run = drift_run_create(
                model=version.model,
                start=T0 + first * HOUR,
                end=T0 + last * HOUR,
                trigger="api",
            )
            assert wait_for_run(run).status == "succeeded"
        state = DetectorState.objects.get(version=version)
        assert state.cursor_time == T0 + last * HOUR

    uninterrupted = drift_core.PageHinkley()
    changes = uninterrupted.update(_windows_scores(version, 4))
    assert state.state == uninterrupted.state_dict()
    assert state.changes == len(changes) >= 1
    flagged = DriftResult.objects.filter(version=version, score_changes__gt=0)
    assert all(r.window_start >= T0 + 2 * HOUR for r in flagged)
