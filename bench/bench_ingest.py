"""Ingest throughput over HTTP vs the database's own COPY speed, on PostgreSQL.

Sends N predictions with 30 features in batches over HTTP to the app under
gunicorn (validation, idempotent insert, token auth), then loads the same rows
into a scratch table with the same columns and indexes by one raw psycopg COPY
of a text buffer prepared before the clock starts. Prints rows/s of both, the
ratio, and the peak memory of a gunicorn worker handling a 10,000-item batch.

    .venv/bin/python bench/bench_ingest.py [--rows 100000 --batch 1000 --clients 4]

Needs a PostgreSQL server (default postgres://postgres@127.0.0.1:5432, trust auth);
creates and drops the database govsite_bench_ingest. Loopback only.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    return p.parse_args()


def setup_environment(args):
    db = "govsite_bench_ingest"
    for sql in (f"DROP DATABASE IF EXISTS {db}", f"CREATE DATABASE {db}"):
        subprocess.run(["psql", args.server + "/postgres", "-qc", sql], check=True)
    var = tempfile.mkdtemp(prefix="bench-ingest-")
    os.environ.update(
        DATABASE_URL=f"{args.server}/{db}",
        GOVSITE_VAR_DIR=var,
        DJANGO_SETTINGS_MODULE="govsite.settings",
        SECRET_KEY="bench-" + "x" * 50,
        CELERY_BROKER_URL="memory://",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return db


def register_model():
    """A 30-feature production version and a service token (setup, not measured)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from knox.models import AuthToken

    from registry import synthetic
    from registry.models import MLModelVersion
    from registry.registration import register_training_result
    from registry.training import train

    result = train(synthetic.generate(5000, seed=1, n_noise_features=21), num_boost_round=10)
    version = register_training_result(
        result=result, model_name="bench", version="1.0.0", registered_by=None
    )
    MLModelVersion.objects.filter(pk=version.pk).update(status="production")
    user = get_user_model().objects.create(username="bench-soc")
    user.groups.add(Group.objects.get(name="SOC service"))
    _, token = AuthToken.objects.create(user=user, expiry=None)
    return version, token


def make_items(version, n, prefix):
    from datetime import timedelta

    from django.utils import timezone

    from registry import synthetic

    start = timezone.now() - timedelta(days=1)
    events = synthetic.generate(n, seed=2, n_noise_features=21, start=start, days=0.9)
    items = events.to_records()
    for i, item in enumerate(items):
        item.update(model="bench", request_id=f"{prefix}-{i}", score=0.5)
    return items


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(workers):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "govsite.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "300",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def post(url, token, body: bytes):
    request = urllib.request.Request(
        url + "/api/v1/predictions/",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def run_http(url, token, bodies, clients):
    queue, lock, accepted = list(bodies), threading.Lock(), [0]

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            result = post(url, token, body)
            with lock:
                accepted[0] += result["accepted"]

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, accepted[0]


def run_copy(version, items):
    """The database's own cost: COPY one pre-formatted buffer into an identical table."""
    from django.db import connection

    from monitoring.ingest import COLUMNS, _copy_buffer, predictions_validate

    renamed = [dict(i, request_id="copy-" + i["request_id"]) for i in items]
    buffer = b"".join(  # prepared before the clock starts
        _copy_buffer(predictions_validate(renamed[k : k + 10_000]))
        for k in range(0, len(renamed), 10_000)
    )
    columns = ", ".join(COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_copy")
        cursor.execute("CREATE TABLE bench_copy (LIKE monitoring_predictionlog INCLUDING ALL)")
        start = time.perf_counter()
        with cursor.copy(f"COPY bench_copy ({columns}) FROM STDIN") as copy:
            copy.write(buffer)
        elapsed = time.perf_counter() - start
        cursor.execute("SELECT count(*) FROM bench_copy")
        assert cursor.fetchone()[0] == len(items)
    return elapsed


def worker_peak_memory(version, token):
    """VmHWM of a single gunicorn worker before and after one 10,000-item batch."""
    proc, url = start_gunicorn(1)
    try:
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        status = Path(f"/proc/{children[0]}/status")

        def hwm():
            line = [x for x in status.read_text().splitlines() if x.startswith("VmHWM")][0]
            return int(line.split()[1]) / 1024

        post(url, token, json.dumps({"predictions": make_items(version, 10, "warm")}).encode())
        before = hwm()
        body = json.dumps({"predictions": make_items(version, 10_000, "mem")}).encode()
        post(url, token, body)
        return before, hwm(), len(body) / 2**20
    finally:
        proc.terminate()
        proc.wait()


def _ticks(pid: int, children: bool = False) -> int:
    """CPU clock ticks of a process (and of its reaped children when asked)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # it exited meanwhile
        return 0
    used = int(fields[11]) + int(fields[12])
    return used + (int(fields[13]) + int(fields[14]) if children else 0)


def app_cpu(proc) -> float:
    """CPU seconds of gunicorn: the master and its live workers."""
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
    ).stdout.split()
    return (_ticks(proc.pid) + sum(_ticks(int(c)) for c in children)) / os.sysconf("SC_CLK_TCK")


def database_cpu() -> float:
    """CPU seconds of the PostgreSQL server: its live processes plus the backends the
    postmaster has reaped (connections are not kept between requests). It counts every
    database on the server, so other work on the machine inflates it."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() not in ("postgres", "postmaster"):
                continue
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        total += _ticks(int(entry.name), children=ppid == 1)
    return total / os.sysconf("SC_CLK_TCK")


def main():
    args = parse_args()
    db = setup_environment(args)
    version, token = register_model()
    items = make_items(version, args.rows, "req")
    bodies = [
        json.dumps({"predictions": items[i : i + args.batch]}).encode()
        for i in range(0, len(items), args.batch)
    ]
    proc, url = start_gunicorn(args.workers)
    try:
        post(url, token, json.dumps({"predictions": make_items(version, 10, "warm")}).encode())
        app0, db0 = app_cpu(proc), database_cpu()
        http_s, accepted = run_http(url, token, bodies, args.clients)
        http_app_cpu, http_db_cpu = app_cpu(proc) - app0, database_cpu() - db0
    finally:
        proc.terminate()
        proc.wait()
    assert accepted == args.rows, accepted
    from monitoring.models import PredictionLog

    assert PredictionLog.objects.filter(request_id__startswith="req-").count() == args.rows
    db0 = database_cpu()
    copy_s = run_copy(version, items)
    copy_db_cpu = database_cpu() - db0
    before, after, body_mib = worker_peak_memory(version, token)
    http_rate, copy_rate = args.rows / http_s, args.rows / copy_s
    print(
        f"rows={args.rows} features=30 batch={args.batch} clients={args.clients} "
        f"gunicorn workers={args.workers} database={db}"
    )
    print(
        f"HTTP ingest (auth, validation, idempotent COPY): {http_s:11.2f} s "
        f"{http_rate:10,.0f} rows/s"
    )
    print(
        f"raw COPY of a prepared buffer (same columns/indexes): {copy_s:6.2f} s "
        f"{copy_rate:10,.0f} rows/s"
    )
    print(f"ratio HTTP / raw COPY: {http_rate / copy_rate:.2f}")
    per_row = 1e6 / args.rows
    print(
        f"CPU per row: HTTP ingest {http_app_cpu * per_row:.1f} us in gunicorn + "
        f"{http_db_cpu * per_row:.1f} us in PostgreSQL; raw COPY "
        f"{copy_db_cpu * per_row:.1f} us in PostgreSQL"
    )
    print(
        f"worker peak RSS (VmHWM): {before:.0f} MiB before, {after:.0f} MiB after a "
        f"10,000-item batch ({body_mib:.1f} MiB of JSON)"
    )


if __name__ == "__main__":
    main()
