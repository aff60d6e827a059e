"""Fault tests: real processes are killed, restarted or cut off, and the outcome is checked.

1. A Celery worker SIGKILLed in the middle of a drift job: the job is redelivered to a
   new worker and completes exactly once.
2. PostgreSQL restarted while the API ingests predictions (a throwaway cluster): every
   item is stored exactly once after the client's retries.
3. The broker hung, then gone: the API keeps answering and storing; queued work catches
   up through a real worker and beat once the broker is back.
4. A model artifact corrupted on disk: loading it and the explanation endpoint refuse
   with the hash mismatch and an audit event; restoring the file restores service.

Every process and cluster a test starts is stopped in teardown, also on failure.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
import requests

from monitoring.tests.factories import T0, drifted_scenario, log_window

ROOT = Path(__file__).resolve().parent.parent
HOUR = timedelta(hours=1)
ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
ON_REDIS = os.environ.get("CELERY_BROKER_URL", "").startswith("redis://")
needs_postgres = pytest.mark.skipif(not ON_POSTGRES, reason="DATABASE_URL is not PostgreSQL")
needs_redis = pytest.mark.skipif(
    not (ON_REDIS and shutil.which("redis-server")),
    reason="the broker is not Redis (or redis-server is not installed)",
)
needs_pg_tools = pytest.mark.skipif(
    not (shutil.which("pg_createcluster") and os.geteuid() == 0),
    reason="needs Debian's pg_createcluster, run as root",
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, logs=None):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what}" + (logs() if logs else "")
    )


class Processes:
    """Child processes in their own sessions, so a test can kill a whole process group;
    teardown kills whatever is left."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.started: list[tuple[str, subprocess.Popen]] = []
        self.log_files: list[BinaryIO] = []  # each child's output file, closed in stop_all

    def start(self, name: str, cmd: list[str], env: dict) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop_all)
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.log_files.append(log)
        self.started.append((name, proc))
        return proc

    def kill(self, proc: subprocess.Popen, sig=signal.SIGKILL, timeout: float = 30) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(timeout)

    def stop_all(self) -> None:
        for _, proc in self.started:
            self._signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for _, proc in self.started:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        for _, proc in self.started:
            self._signal(proc, signal.SIGKILL)  # a stopped or stuck group, children too
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        for log in self.log_files:
            log.close()

    @staticmethod
    def _signal(proc, sig) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def logs(self) -> str:
        out = []
        for name, _ in self.started:
            text = (self.logdir / f"{name}.log").read_text(errors="replace")
            out.append(f"\n--- {name} (last lines) ---\n" + "\n".join(text.splitlines()[-40:]))
        return "".join(out)

    # ---- the programs

    def redis(self, port: int) -> subprocess.Popen:
        import redis

        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(self.logdir)]
        proc = self.start(f"redis-{port}-{len(self.started)}", cmd, dict(os.environ))
        client = redis.Redis(port=port, socket_timeout=1)

        def up():
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        wait_until(up, 30, f"redis-server on port {port}", self.logs)
        return proc

    def worker(self, name: str, env: dict, *, beat=False, wait=True) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "celery", "-A", "govsite", "worker", "-P", "prefork"]
        cmd += ["-c", "1", "-n", f"{name}@%h", "--without-mingle", "--without-gossip", "-l", "INFO"]
        if beat:
            cmd += ["-B", "-s", str(self.logdir / "beat-schedule")]
        proc = self.start(name, cmd, env)
        if wait:
            self.ready(name)
        return proc

    def ready(self, name: str) -> None:
        log = self.logdir / f"{name}.log"
        wait_until(lambda: b" ready." in log.read_bytes(), 180, f"worker {name}", self.logs)

    def web(self, env: dict, *, wait: bool = True) -> str:
        port = free_port()
        cmd = [sys.executable, "-m", "gunicorn", "govsite.wsgi:application"]
        cmd += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "120"]
        self.start(f"web-{port}", cmd, env)
        url = f"http://127.0.0.1:{port}"
        if wait:
            self.web_ready(url)
        return url

    def web_ready(self, url: str) -> None:
        def up():
            try:
                return requests.get(url + "/accounts/login/", timeout=30).status_code == 200
            except requests.RequestException:
                return False

        wait_until(up, 180, "gunicorn", self.logs)


@pytest.fixture
def procs(tmp_path):
    processes = Processes(tmp_path)
    yield processes
    processes.stop_all()


def subprocess_database_url() -> str:
    """The pytest-django test database, for processes that must see the committed rows."""
    from django.db import connection

    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def app_env(broker: str, **extra) -> dict:
    """The environment of a web server or worker on the test database and ``broker``."""
    from django.conf import settings

    env = dict(os.environ)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(
        DATABASE_URL=subprocess_database_url(),
        CELERY_BROKER_URL=broker,
        ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT),
        DJANGO_SETTINGS_MODULE="govsite.settings",
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def token_for(user) -> dict:
    from knox.models import AuthToken

    _, raw = AuthToken.objects.create(user=user, expiry=None)
    return {"Authorization": f"Token {raw}"}


def timed(call):
    began = time.monotonic()
    result = call()
    return result, time.monotonic() - began


# --------------------------------------------------------------------------- 1. worker killed

VISIBILITY = 4  # seconds before Redis hands an unacknowledged message to another worker
LEASE = 5  # seconds a running drift job's lease lasts without a heartbeat
WINDOWS, ROWS = 24, 150


def _run_refreshed(run):
    run.refresh_from_db()
    return run


def _uninterrupted_detector(version) -> tuple[dict, int]:
    """Page-Hinkley over every window's scores, in order, in one pass."""
    from monitoring import drift_core
    from monitoring.drift_jobs import window_arrays

    windows = [
        window_arrays(version=version, start=T0 + h * HOUR, end=T0 + (h + 1) * HOUR)
        for h in range(WINDOWS)
    ]
    detector = drift_core.PageHinkley()
    changes = detector.update(np.concatenate([w.scores[w.order] for w in windows]))
    return detector.state_dict(), len(changes)


@needs_postgres
@needs_redis
def test_a_drift_job_whose_worker_is_killed_is_redelivered_and_completes_once(register, procs):
    import redis
    from django.db.models import Count

    from core.models import AuditEvent, Notification
    from govsite.celery import app
    from monitoring.drift_jobs import drift_run_create
    from monitoring.models import Alert, DetectorState, DriftResult, PerformanceResult
    from monitoring.tasks import drift_run_task

    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    procs.redis(port)
    env = app_env(
        broker,
        CELERY_VISIBILITY_TIMEOUT=VISIBILITY,
        DRIFT_RUN_LEASE_SECONDS=LEASE,
        DRIFT_SPAN_MINUTES=60,
    )
    first = procs.worker("first", env, wait=False)  # starts while the traffic is logged
    version = register("1.0.0")
    for w in range(WINDOWS):
        # Drifted first: windows the killed worker finished raised alerts, which a rerun
        # of those windows would count twice.
        scenario = drifted_scenario() if w < WINDOWS // 2 else None
        log_window(
            version, rows=slice(w * ROWS, (w + 1) * ROWS), start=T0 + w * HOUR, scenario=scenario
        )
    run = drift_run_create(
        model=version.model, start=T0, end=T0 + WINDOWS * HOUR, trigger="api", enqueue=False
    )
    procs.ready("first")
    with app.connection_for_write(broker) as conn:
        drift_run_task.apply_async((run.pk,), connection=conn)

    wait_until(
        lambda: _run_refreshed(run).windows_done >= 3, 120, "the job to be mid-run", procs.logs
    )
    procs.kill(first)  # SIGKILL to the whole group: the pool child and its parent
    run.refresh_from_db()
    assert run.windows_done < run.windows_total == WINDOWS, "the job finished before the kill"
    assert run.status == "running" and run.attempts == 1
    # The message was taken and never acknowledged; Redis restores it after the timeout.
    taken = redis.Redis(port=port).zrange("unacked_index", 0, -1, withscores=True)
    assert len(taken) == 1
    wait_until(lambda: time.time() > taken[0][1] + VISIBILITY + 0.5, 30, "the visibility timeout")

    procs.worker("second", env)
    wait_until(
        lambda: _run_refreshed(run).status in ("succeeded", "failed"),
        180,
        "the redelivered job",
        procs.logs,
    )
    assert run.status == "succeeded", run.message + procs.logs()
    assert run.attempts == 2  # claimed once by each worker
    assert (run.windows_done, run.rows_read) == (WINDOWS, WINDOWS * ROWS)

    # One result per (version, window), all from this run.
    results = DriftResult.objects.filter(version=version)
    assert results.count() == WINDOWS == results.filter(run=run).count()
    assert results.values("window_start").distinct().count() == WINDOWS
    assert PerformanceResult.objects.filter(version=version, run=run).count() == WINDOWS
    # The detector saw every window's scores exactly once, in order.
    state = DetectorState.objects.get(version=version)
    expected_state, expected_changes = _uninterrupted_detector(version)
    assert state.state == expected_state and state.changes == expected_changes
    assert state.cursor_time == T0 + WINDOWS * HOUR

    # Alerts: at most one live row per condition, and every window that showed the
    # condition counted once (a condition that cleared and came back after the cooldown
    # has a resolved row and a new one).
    alerts = Alert.objects.filter(version=version)
    assert alerts.filter(kind="drift").exists()
    live = alerts.exclude(status="resolved").values("dedupe_key").annotate(n=Count("id"))
    assert not live.filter(n__gt=1).exists()
    counted = {}
    for alert in alerts:
        counted[alert.dedupe_key] = counted.get(alert.dedupe_key, 0) + alert.count
    for key, count in counted.items():
        if key.startswith("drift:"):
            feature = key.rsplit(":", 1)[1]
            assert count == sum(
                1
                for r in results
                if r.features[feature]["status"] == "ok" and r.features[feature]["drifted"]
            ), key
    shifts = sum(1 for r in results if r.status == "ok" and r.score_changes)
    assert counted.get(f"score_shift:{version.pk}", 0) == shifts
    raised = Notification.objects.filter(event="alert.raised")
    assert sorted(n.payload["alert"] for n in raised) == sorted(a.pk for a in alerts)
    assert AuditEvent.objects.filter(action="alert.raised").count() == alerts.count()


# --------------------------------------------------------------------------- 2. PostgreSQL restart

N_ITEMS, BATCH = 3000, 100
SETUP = """
import io
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
call_command("create_account", "mira", role="ML engineer", password="fault-test-pw-2026")
out = io.StringIO()
call_command("create_account", "soc", role="SOC service", service=True, stdout=out)
call_command(
    "register_version", "threat", "1.0.0", artifact="{d}/model.json",
    metadata="{d}/meta.json", evaluation="{d}/eval.npz", as_user="mira",
)
print("TOKEN=" + out.getvalue().strip().splitlines()[-1])
"""


@pytest.fixture
def throwaway_cluster():
    """A PostgreSQL cluster of its own (the shared one is never restarted); dropped after."""
    release = sorted(os.listdir("/etc/postgresql"))[-1]
    name = "faultpg"
    port = 5499
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            port = free_port()

    def drop():
        if Path(f"/etc/postgresql/{release}/{name}").exists():
            subprocess.run(
                ["pg_dropcluster", "--stop", release, name], capture_output=True, timeout=120
            )

    drop()  # left over by an interrupted run
    subprocess.run(
        ["pg_createcluster", release, name, "-p", str(port), "--start", "-o", "fsync=off"]
        + ["--", "--auth-local=trust", "--auth-host=trust"],
        check=True,
        capture_output=True,
        timeout=180,
    )
    try:
        psql = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-q"]
        subprocess.run(psql + ["-c", "CREATE DATABASE govsite"], check=True, timeout=60)
        restart = [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            release,
            name,
            "restart",
            "-m",
            "fast",
        ]
        yield {"url": f"postgres://postgres@127.0.0.1:{port}/govsite", "restart": restart}
    finally:
        drop()


def _items() -> list[dict]:
    from registry import synthetic

    events = synthetic.generate(N_ITEMS, seed=23)
    rng = np.random.default_rng(23)
    items = []
    for record in events.to_records():
        record.pop("timestamp")
        items.append(dict(record, model="threat", version="1.0.0", score=float(rng.random())))
    return items


def _post_until_acknowledged(url, headers, batch, deadline, failures) -> dict:
    """POST a batch until it is acknowledged; the answer, with the attempts it took."""
    attempts = 0
    while time.monotonic() < deadline:
        attempts += 1
        try:
            response = requests.post(url, json={"predictions": batch}, headers=headers, timeout=60)
            if response.status_code == 201:
                return {**response.json(), "attempts": attempts}
            assert response.status_code >= 500, response.text[:2000]
            failures.append(response.status_code)
        except requests.RequestException as exc:
            failures.append(type(exc).__name__)
        time.sleep(0.2)
    raise AssertionError("a batch was never acknowledged")


@needs_postgres
@needs_pg_tools
def test_ingest_through_a_postgresql_restart_stores_every_item_exactly_once(
    throwaway_cluster, registration_files, procs, tmp_path
):
    import json

    import psycopg

    from monitoring.models import PredictionLog

    artifact, metadata, evaluation = registration_files
    (tmp_path / "model.json").write_bytes(artifact)
    (tmp_path / "meta.json").write_text(json.dumps(metadata))
    (tmp_path / "eval.npz").write_bytes(evaluation)
    env = dict(os.environ)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(
        DATABASE_URL=throwaway_cluster["url"],
        ARTIFACT_ROOT=str(tmp_path / "artifacts"),
        DJANGO_SETTINGS_MODULE="govsite.settings",
    )
    site = procs.web(env, wait=False)  # boots while the database is migrated
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SETUP.format(d=tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    token = done.stdout.split("TOKEN=")[1].strip()
    procs.web_ready(site)
    url = site + "/api/v1/predictions/"
    headers = {"Authorization": f"Token {token}"}

    items = _items()
    batches = [items[i : i + BATCH] for i in range(0, N_ITEMS, BATCH)]
    acknowledged, failures = [], []
    restarted = threading.Event()

    def restart():
        subprocess.run(throwaway_cluster["restart"], check=True, capture_output=True, timeout=120)
        restarted.set()

    restarter = threading.Thread(target=restart)
    deadline = time.monotonic() + 150
    for i, batch in enumerate(batches):
        if i == len(batches) // 4:
            restarter.start()  # while the next batches are in flight
        if i == len(batches) // 2:
            restarted.wait(120)  # the rest goes to the restarted server
        acknowledged.append(_post_until_acknowledged(url, headers, batch, deadline, failures))
    restarter.join(120)
    assert restarted.is_set()
    assert failures, "no request met the restart; the test proved nothing"

    # A batch acknowledged at its first attempt was new; a retried one may have been
    # committed by an attempt whose answer was lost: then it answers duplicates.
    assert all(a["received"] == a["accepted"] + a["duplicates"] for a in acknowledged)
    assert all(a["accepted"] == BATCH for a in acknowledged if a["attempts"] == 1)
    assert sum(a["received"] for a in acknowledged) == N_ITEMS
    ids = [item["request_id"] for item in items]
    with psycopg.connect(throwaway_cluster["url"]) as conn:
        rows = conn.execute(
            f"SELECT request_id, count(*) FROM {PredictionLog._meta.db_table} "
            "WHERE request_id = ANY(%s) GROUP BY request_id",
            [ids],
        ).fetchall()
    assert len(rows) == N_ITEMS and {n for _, n in rows} == {1}


# --------------------------------------------------------------------------- 3. broker down


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Hook.received
    server.shutdown()


def _sweeps_every_two_seconds():
    """The beat entries of the requeue sweeps, due often enough for a test."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    PeriodicTask.objects.all().delete()
    every, _ = IntervalSchedule.objects.get_or_create(every=2, period=IntervalSchedule.SECONDS)
    for name, task in (
        ("monitoring: requeue pending drift runs", "monitoring.tasks.drift_runs_requeue"),
        ("core: requeue pending notifications", "core.tasks.notifications_requeue"),
    ):
        PeriodicTask.objects.create(name=name, task=task, interval=every)


# Seconds a request may take with the broker down. Without the broker timeouts a hung
# broker holds the request until gunicorn kills its worker (120 s); the bound leaves room
# for a loaded machine (an approval request computes its evidence).
PROMPT = 45


@needs_postgres
@needs_redis
def test_with_the_broker_down_the_api_answers_and_the_work_catches_up(
    staged, ml_engineer, approver, soc_service, procs, webhook
):
    import json

    from core.models import Notification
    from monitoring.models import DriftRun, PredictionLog

    hook_url, received = webhook
    version = staged("1.0.0")
    engineer, service = token_for(ml_engineer), token_for(soc_service)
    port = free_port()
    env = app_env(
        f"redis://127.0.0.1:{port}/0",
        CELERY_BROKER_TIMEOUT=2,
        ALERT_WEBHOOK_URL=hook_url,
        PENDING_REQUEUE_SECONDS=1,
    )
    hung = procs.redis(port)
    os.kill(hung.pid, signal.SIGSTOP)  # accepts connections, never answers
    site = procs.web(env)
    drift_run = f"{site}/api/v1/models/{version.model.name}/drift/run/"

    # A hung broker: the request that enqueues answers within its timeouts.
    response, took = timed(lambda: requests.post(drift_run, json={}, headers=engineer, timeout=90))
    assert response.status_code == 202, response.text[:2000]
    assert took < PROMPT, f"enqueueing on a hung broker held the request {took:.0f}s"
    procs.kill(hung)  # now nothing listens on the port

    items = [dict(record, model="threat", version="1.0.0", score=0.5) for record in _items()[:3]]
    response, took = timed(
        lambda: requests.post(
            f"{site}/api/v1/predictions/", json={"predictions": items}, headers=service, timeout=60
        )
    )
    assert response.status_code == 201 and response.json()["accepted"] == 3
    assert took < PROMPT
    assert PredictionLog.objects.filter(version=version).count() == 3
    response, took = timed(
        lambda: requests.post(
            f"{site}/api/v1/versions/{version.pk}/request-approval/",
            json={"notes": "broker is down"},
            headers=engineer,
            timeout=90,
        )
    )
    assert response.status_code in (200, 201), response.text[:2000]
    assert took < PROMPT
    response, took = timed(lambda: requests.post(drift_run, json={}, headers=engineer, timeout=90))
    assert response.status_code == 202 and took < PROMPT

    # The work is stored, waiting.
    runs = DriftRun.objects.filter(model=version.model)
    assert runs.count() == 2 and set(runs.values_list("status", flat=True)) == {"queued"}
    notes = Notification.objects.filter(event="approval.requested")
    assert notes.count() == 1 and notes.get().status == "pending"
    assert received == []

    # The broker is back (empty: the failed messages were never stored); beat's sweeps
    # and a worker send what was left behind.
    procs.redis(port)
    _sweeps_every_two_seconds()
    procs.worker("catchup", env, beat=True)
    wait_until(
        lambda: set(runs.values_list("status", flat=True)) == {"succeeded"},
        120,
        "the queued drift runs",
        procs.logs,
    )
    wait_until(lambda: notes.get().status == "sent", 60, "the notification", procs.logs)
    assert notes.get().attempts == 1
    events = [json.loads(body)["event"] for body in received]
    assert events.count("approval.requested") == 1
    assert all(run.attempts == 1 for run in runs)


# --------------------------------------------------------------------------- 4. corrupt artifact


def test_a_corrupted_artifact_is_refused_with_the_hash_mismatch_until_restored(
    register, soc_service, live_server, artifact_root
):
    from core.audit import audit_verify
    from core.models import AuditEvent
    from monitoring.models import PredictionLog
    from registry.artifacts import ArtifactIntegrityError
    from registry.services import version_load_booster

    version = register("1.0.0")
    log_window(version, rows=slice(0, 1), start=T0, tag="corrupt")
    PredictionLog.objects.filter(version=version).update(incident_id="INC-CORRUPT-1")
    url = f"{live_server.url}/api/ml/explain/INC-CORRUPT-1"
    headers = token_for(soc_service)
    before = requests.get(url, headers=headers, timeout=60)
    assert before.status_code == 200, before.text[:2000]  # booster and explainer now cached

    # Bit rot: one flipped bit, same size, modification time put back.
    path = artifact_root / version.model_path
    good, stat = path.read_bytes(), path.stat()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x04
    path.write_bytes(bytes(bad))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    refused = requests.get(url, headers=headers, timeout=60)
    assert refused.status_code == 409, refused.text[:2000]
    body = refused.json()
    assert "failed verification" in body["error"] and "explanation" not in body
    assert body["details"]["expected_sha256"] == version.model_hash
    assert body["details"]["actual_sha256"] not in ("", version.model_hash)
    with pytest.raises(ArtifactIntegrityError, match="does not match the registered"):
        version_load_booster(version=version)
    failures = AuditEvent.objects.filter(action="artifact.verification_failed")
    assert failures.count() == 2
    assert {e.payload["expected"] for e in failures} == {version.model_hash}
    assert failures.filter(actor=soc_service).count() == 1

    path.write_bytes(good)
    after = requests.get(url, headers=headers, timeout=60)
    assert after.status_code == 200, after.text[:2000]
    assert after.json()["explanation"] == before.json()["explanation"]
    assert version_load_booster(version=version) is not None
    assert failures.count() == 2
    assert audit_verify().ok
