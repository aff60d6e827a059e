"""Bounded load test of the SOC backend's API on PostgreSQL, Redis, gunicorn and Celery.

    .venv/bin/python bench/load_test.py [--clients 32 --duration 60 --workers 4]

Setup (not timed): drops and recreates the PostgreSQL database ``--database``
(default govsite_load) in a fresh ``GOVSITE_VAR_DIR`` (default var/load), migrates,
trains two XGBoost versions of ``threat-detector`` (1.0.0 in production, the approved
1.1.0 as challenger on 10 % of the traffic), logs a pool of scored incidents and has
the Celery worker precompute the explanations of the high-risk ones through the broker
(``CELERY_BROKER_URL``, default Redis db 9). Then gunicorn (``--workers`` sync workers)
and that Celery worker serve ``--clients`` concurrent client threads for
``--duration`` seconds, each picking one operation at a time by the ``--mix`` weights:

- ingest: ``POST /api/v1/predictions/`` with ``--batch`` items (new request_ids, no
  version: each item is routed by its entity); a ``--resend`` share of them resends the
  batch that some client sent last, often while it is still in flight, so that requests
  race on the same request_ids;
- route: ``GET /api/v1/models/threat-detector/route/?entity=...`` for a random entity;
- explain: ``GET /api/ml/explain/{incident_id}`` for a precomputed incident.

All as a SOC service token over 127.0.0.1. Every ``--background-every`` seconds the
run also enqueues the explanation precompute (``explain_recent``), as beat would.
It prints per-operation and total throughput, p50/p95/p99 latency, errors and the CPU
seconds used by gunicorn, Celery, PostgreSQL and the clients, then checks that every
acknowledged prediction (every request_id of a 2xx answer) is in the database exactly
once, that nothing else is, and that the answers counted each stored row as accepted
exactly once. Last, one client sends ``--cost-requests`` requests of each operation
one at a time, for the server CPU (gunicorn and PostgreSQL) each one costs. Exits
non-zero on any error or failed check. Processes it started are stopped on exit,
Ctrl-C and failure; the database and the var folder (with gunicorn.log and celery.log)
are kept for inspection until the next run.
"""

import argparse
import http.client
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODEL = "threat-detector"
PREFIX = "load-"
STOP = threading.Event()  # set on interrupt: clients stop before the servers do


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    p.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    p.add_argument("--celery-concurrency", type=int, default=1)
    p.add_argument("--batch", type=int, default=100, help="items per ingest request")
    p.add_argument(
        "--mix", default="ingest=2,route=5,explain=3", help="operation weights (name=weight,...)"
    )
    p.add_argument(
        "--resend",
        type=float,
        default=0.1,
        help="share of ingest requests that resend the batch another client sent last",
    )
    p.add_argument("--incidents", type=int, default=300, help="precomputed incidents to fetch")
    p.add_argument("--pool", type=int, default=5000, help="scored events reused by ingest")
    p.add_argument("--background-every", type=float, default=10.0, help="0: no background task")
    p.add_argument(
        "--cost-requests",
        type=int,
        default=100,
        help="after the load, requests per operation from one client to measure CPU per request",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="client timeout per request (s)")
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--database", default="govsite_load")
    p.add_argument("--broker", default="redis://127.0.0.1:6379/9")
    p.add_argument("--var-dir", default=str(ROOT / "var" / "load"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.weights = {}
    for part in args.mix.split(","):
        name, _, weight = part.partition("=")
        if name not in ("ingest", "route", "explain") or not weight.isdigit():
            p.error(f"bad --mix entry {part!r}")
        args.weights[name] = int(weight)
    return args


# --------------------------------------------------------------------------- setup


def setup_environment(args) -> Path:
    var = Path(args.var_dir)
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    admin = args.server + "/postgres"
    for sql in (f"DROP DATABASE IF EXISTS {args.database}", f"CREATE DATABASE {args.database}"):
        subprocess.run(["psql", admin, "-qc", sql], check=True)
    os.environ.pop("ARTIFACT_ROOT", None)
    os.environ.update(
        DATABASE_URL=f"{args.server}/{args.database}",
        GOVSITE_VAR_DIR=str(var),
        CELERY_BROKER_URL=args.broker,
        DJANGO_SETTINGS_MODULE="govsite.settings",
        SECRET_KEY="load-" + "x" * 50,
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return var


def build_model():
    """Two trained versions, 1.0.0 serving and 1.1.0 approved on 10 %; a SOC token."""
    from django.contrib.auth.models import Group, User
    from knox.models import AuthToken

    from core import roles
    from registry import services, synthetic
    from registry.registration import register_training_result
    from registry.traffic import traffic_set
    from registry.training import train

    people = {}
    for name, role in (("eng", roles.ML_ENGINEER), ("ap", roles.APPROVER), ("soc", "")):
        people[name] = User.objects.create_user(f"load-{name}", is_staff=role == roles.APPROVER)
        people[name].groups.add(Group.objects.get(name=role or roles.SOC_SERVICE))
    versions = []
    for semver, seed in (("1.0.0", 1), ("1.1.0", 2)):
        result = train(synthetic.generate(20_000, seed=seed), num_boost_round=100, seed=seed)
        v = register_training_result(
            result=result, model_name=MODEL, version=semver, registered_by=people["eng"]
        )
        v.model.fairness_gate = False
        v.model.save(update_fields=["fairness_gate"])
        for to in ("testing", "staging"):
            v = services.version_transition(version=v, to=to, actor=people["eng"])
        request = services.approval_request_create(version=v, actor=people["eng"])
        services.approval_decide(request=request, approver=people["ap"], decision="approve")
        versions.append(v)
    services.version_transition(version=versions[0], to="production", actor=people["ap"])
    for v in versions:
        v.refresh_from_db()
    traffic_set(
        model=versions[0].model,
        challenger=versions[1],
        challenger_bp=1000,
        shadows=[],
        actor=people["ap"],
    )
    _, token = AuthToken.objects.create(user=people["soc"], expiry=None)
    return versions[0], token


def seed_traffic(champion, args):
    """Log scored incidents; return the high-risk ones and the item pool for ingest."""
    from monitoring.models import PredictionLog
    from monitoring.traffic_generator import traffic_generate, traffic_load

    seeded = traffic_generate(serving=champion, events=20_000, days=1.0, seed=7)
    traffic_load(traffic=seeded)
    high = PredictionLog.objects.filter(
        version=champion, score__gte=champion.model.explain_threshold
    ).order_by("pk")[: args.incidents]
    high = list(high.values_list("pk", "incident_id", "features"))
    if not high:
        raise RuntimeError("no high-risk incidents among the seeded traffic")
    pool = traffic_generate(serving=champion, events=args.pool, days=1.0, seed=8).items
    for item in pool:  # routed by entity on ingest: champion or challenger
        del item["version"], item["role"], item["request_id"], item["incident_id"]
    return high, pool


def precompute_by_worker(high, timeout=600.0) -> int:
    """Enqueue the precompute through the broker and wait until the worker stored it."""
    from explain.models import Explanation
    from explain.services import feature_hash
    from explain.tasks import explain_predictions

    wanted = {feature_hash(bytes(raw)) for _, _, raw in high}
    explain_predictions.delay([pk for pk, _, _ in high])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Explanation.objects.filter(feature_hash__in=wanted).count() == len(wanted):
            return len(wanted)
        time.sleep(0.5)
    raise RuntimeError("the Celery worker did not precompute the explanations in time")


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Child processes in their own sessions, so that each is stopped with its children."""

    def __init__(self, var: Path):
        self.var = var
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.var / f"{name}.log", "ab")  # noqa: SIM115 (lives with the process)
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        self.procs[name] = proc
        return proc

    def dead(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def stop(self) -> None:
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group of a process started with start_new_session
    except ProcessLookupError:
        pass


def start_celery(procs: Processes, concurrency: int) -> None:
    from govsite.celery import app

    app.control.purge()  # tasks left in this broker database by an interrupted run
    procs.start(
        "celery",
        [sys.executable, "-m", "celery", "-A", "govsite", "worker", "--loglevel", "WARNING"]
        + ["--concurrency", str(concurrency), "--hostname", f"load-{os.getpid()}@%h"],
    )
    for _ in range(120):
        if app.control.ping(timeout=1.0):
            return
        if procs.dead():
            break
    raise RuntimeError("the Celery worker did not start (see celery.log)")


def start_gunicorn(procs: Processes, workers: int) -> int:
    port = free_port()
    procs.start(
        "gunicorn",
        [sys.executable, "-m", "gunicorn", "govsite.wsgi:application"]
        + ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "120"]
        + ["--graceful-timeout", "10", "--log-level", "warning"],
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return port
        except OSError:
            if procs.dead():
                break
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start (see gunicorn.log)")


class CpuMeter:
    """CPU seconds of the processes this run started, of the database's server processes
    and of the clients over a period. /proc is sampled twice a second, so processes that
    exit meanwhile (database connections recycled by CONN_MAX_AGE) still count."""

    def __init__(self, procs: "Processes", database: str):
        self.groups = {p.pid: name for name, p in procs.procs.items()}
        self.tag = f" {database} ".encode()
        self.base: dict[tuple, int] = {}
        self.last: dict[tuple, int] = {}
        self.stop = threading.Event()
        self.rusage = 0.0

    def _scan(self) -> dict[tuple, int]:
        ticks = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                name = self.groups.get(int(fields[2]))
                if name is None and self.tag in (stat.parent / "cmdline").read_bytes():
                    name = "postgres"
            except (OSError, IndexError, ValueError):
                continue
            if name is not None:
                ticks[(name, stat.parent.name)] = int(fields[11]) + int(fields[12])
        return ticks

    def _loop(self):
        while not self.stop.wait(0.5):
            self.last.update(self._scan())

    def __enter__(self):
        self.base = self._scan()
        self.last = dict(self.base)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.rusage = usage.ru_utime + usage.ru_stime
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.last.update(self._scan())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.rusage = usage.ru_utime + usage.ru_stime - self.rusage

    def seconds(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for key, value in self.last.items():
            out[key[0]] += (value - self.base.get(key, 0)) / os.sysconf("SC_CLK_TCK")
        out["clients"] = self.rusage  # this process: client threads and the sampler
        return dict(out)


# --------------------------------------------------------------------------- clients


@dataclass
class Tally:
    latencies: dict = field(default_factory=lambda: defaultdict(list))
    errors: Counter = field(default_factory=Counter)
    acked: list = field(default_factory=list)  # request_ids of 2xx ingest answers
    sent_unacked: list = field(default_factory=list)  # ingest batches without a 2xx answer
    accepted: int = 0  # sum of "accepted" over 2xx ingest answers
    duplicates: int = 0
    resent: int = 0
    last_batch: tuple = ((), b"")  # the ingest batch sent last, by any client
    arms: Counter = field(default_factory=Counter)
    uncached: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Client:
    def __init__(
        self, n: int, port: int, token: str, setup: dict, args, tally: Tally, prefix=PREFIX
    ):
        self.n, self.port, self.args, self.tally, self.setup = n, port, args, tally, setup
        self.prefix = prefix
        self.headers = {"Authorization": f"Token {token}"}
        self.rng = random.Random(args.seed * 1000 + n)
        self.seq = 0

    def healthz(self):
        """The health check (operation_costs measures it as a baseline)."""
        return None, ("GET", "/healthz", None)

    def request(self, method: str, path: str, body: bytes | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.args.timeout)
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def ingest(self):
        if self.rng.random() < self.args.resend:
            with self.tally.lock:
                ids, body = self.tally.last_batch
                self.tally.resent += bool(ids)
            if ids:  # often still in flight: the two requests race on the same request_ids
                return list(ids), ("POST", "/api/v1/predictions/", body)
        self.seq += 1
        ids = [f"{self.prefix}{self.n}-{self.seq}-{k}" for k in range(self.args.batch)]
        items = [
            dict(self.rng.choice(self.setup["pool"]), request_id=rid, incident_id=rid)
            for rid in ids
        ]
        body = json.dumps({"predictions": items}).encode()
        with self.tally.lock:
            self.tally.last_batch = (tuple(ids), body)
        return ids, ("POST", "/api/v1/predictions/", body)

    def route(self):
        entity = f"host-{self.rng.randrange(1_000_000)}.corp.example"
        return None, ("GET", f"/api/v1/models/{MODEL}/route/?entity={entity}", None)

    def explain(self):
        incident = self.rng.choice(self.setup["incidents"])
        return None, ("GET", f"/api/ml/explain/{incident}", None)

    def check(self, op: str, ids, status: int, body: bytes) -> str | dict:
        """The decoded answer when it is right; otherwise what was wrong (a string)."""
        if not 200 <= status < 300:
            return f"HTTP {status}"
        data = json.loads(body)
        expected = {
            "ingest": ids is not None
            and data.get("accepted", -1) >= 0
            and data.get("accepted", -1) + data.get("duplicates", -1) == len(ids),
            "route": data.get("arm") in ("champion", "challenger"),
            "explain": "cached" in data and bool(data.get("explanation")),
        }
        if not expected[op]:
            return f"{op} answered {json.dumps(data)[:100]}"
        return data

    def run(self, deadline: float, record: bool = True):
        ops, weights = list(self.args.weights), list(self.args.weights.values())
        while time.monotonic() < deadline and not STOP.is_set():
            op = self.rng.choices(ops, weights)[0]
            ids, (method, path, body) = getattr(self, op)()
            started = time.perf_counter()
            try:
                status, answer = self.request(method, path, body)
                result = self.check(op, ids, status, answer)
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                result = type(exc).__name__
            elapsed = time.perf_counter() - started
            if record:
                self.record(op, ids, elapsed, result)

    def record(self, op: str, ids, elapsed: float, result: str | dict) -> None:
        problem = result if isinstance(result, str) else None
        with self.tally.lock:
            self.tally.latencies[op].append(elapsed)
            if isinstance(result, str):
                if problem:
                    self.tally.errors[(op, problem[:120])] += 1
            elif op == "route":
                self.tally.arms[result["arm"]] += 1
            elif op == "explain" and not result["cached"]:
                self.tally.uncached += 1
            elif op == "ingest":
                self.tally.accepted += result["accepted"]
                self.tally.duplicates += result["duplicates"]
            if ids is not None:
                (self.tally.sent_unacked if problem else self.tally.acked).extend(ids)


def run_clients(clients: list[Client], seconds: float, record: bool, background=None) -> float:
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=c.run, args=(deadline, record), daemon=True) for c in clients
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    if background:
        background(deadline)
    for t in threads:
        t.join()
    return time.perf_counter() - started


def background_precompute(every: float):
    """Enqueue explain_recent every ``every`` seconds until the deadline, as beat would."""
    from explain.tasks import explain_recent

    sent = []

    def loop(deadline: float):
        while every > 0 and time.monotonic() + every < deadline:
            if STOP.wait(every):
                return
            explain_recent.delay(minutes=5)
            sent.append(time.monotonic())

    return loop, sent


# --------------------------------------------------------------------------- report


def percentile_row(name: str, lat: list, seconds: float, errors: int, rows_per: int = 0) -> str:
    if not lat:
        return f"{name:<8} {0:>9} {'-':>8}"
    ms = np.percentile(np.array(lat) * 1000, [50, 95, 99, 100])
    rows = f"{len(lat) * rows_per / seconds:9,.0f}" if rows_per else f"{'':>9}"
    return (
        f"{name:<8} {len(lat):>9,} {len(lat) / seconds:8.1f} {rows} "
        + " ".join(f"{v:8.1f}" for v in ms)
        + f" {errors:>7}"
    )


def report(args, tally: Tally, seconds: float, loads) -> int:
    print(
        f"clients={args.clients} duration={args.duration:g}s gunicorn sync workers={args.workers} "
        f"celery concurrency={args.celery_concurrency} database={args.database} "
        f"broker={args.broker}; {os.cpu_count()} CPUs; load average "
        f"{loads[0][0]:.2f} at start, {loads[1][0]:.2f} at end (1-min)"
    )
    mix = ", ".join(f"{k} {v}" for k, v in args.weights.items())
    print(f"mix weights: {mix}; ingest batch {args.batch} items; measured {seconds:.1f} s")
    print(
        f"{'op':<8} {'requests':>9} {'req/s':>8} {'rows/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'errors':>7}"
    )
    err_by_op: Counter[str] = Counter()
    for (op, _), n in tally.errors.items():
        err_by_op[op] += n
    for op in args.weights:
        rows_per = args.batch if op == "ingest" else 0
        print(percentile_row(op, tally.latencies[op], seconds, err_by_op[op], rows_per))
    every = [x for lat in tally.latencies.values() for x in lat]
    print(percentile_row("total", every, seconds, sum(err_by_op.values())))
    for (op, problem), n in sorted(tally.errors.items()):
        print(f"  error: {op}: {problem} x{n}")
    arms = sum(tally.arms.values())
    if arms:
        share = tally.arms["challenger"] / arms
        print(f"route: challenger share {share:.3f} of {arms:,} answers (configured 0.100)")
    print(f"explain: {tally.uncached} answers not from the cache (expected 0)")
    return sum(err_by_op.values()) + tally.uncached


def verify(tally: Tally) -> bool:
    """Every acknowledged request_id is stored exactly once, nothing else was stored, and
    the answers accepted each stored row once."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT request_id) FROM monitoring_predictionlog "
            "WHERE request_id LIKE %s",
            [PREFIX + "%"],
        )
        total, distinct = cursor.fetchone()
        cursor.execute(
            "SELECT request_id FROM monitoring_predictionlog WHERE request_id LIKE %s",
            [PREFIX + "%"],
        )
        stored = {r for (r,) in cursor.fetchall()}
    acked, unacked = set(tally.acked), set(tally.sent_unacked)
    missing, extra = acked - stored, stored - acked
    print(
        f"verification: {len(acked):,} distinct request_ids acknowledged "
        f"({tally.resent} batches resent; answers counted {tally.accepted:,} accepted, "
        f"{tally.duplicates:,} duplicates); stored count(*) {total:,}, "
        f"count(distinct) {distinct:,}; acknowledged but missing {len(missing)}; "
        f"stored but not acknowledged {len(extra)} "
        f"({len(extra & unacked)} of them from requests without a 2xx answer)"
    )
    # Each stored row was reported "accepted" by exactly one answer, the others as duplicates.
    ok = total == distinct == len(acked) == tally.accepted and not missing and not extra
    print(f"verification: {'OK' if ok else 'FAILED'}")
    return ok


def server_log_problems(var: Path) -> int:
    problems = 0
    for name in ("gunicorn", "celery"):
        text = (var / f"{name}.log").read_text(errors="replace")
        counts = {k: text.count(k) for k in ("Traceback", "WORKER TIMEOUT", "ERROR")}
        print(f"{name}.log: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        problems += counts["Traceback"] + counts["WORKER TIMEOUT"]
    return problems


def operation_costs(client: Client, procs: "Processes", database: str, n: int) -> None:
    """Server CPU and wall time per request of each operation, one request at a time."""
    for op in ("healthz", "route", "explain", "ingest"):
        wall, problems = 0.0, 0
        with CpuMeter(procs, database) as meter:
            for _ in range(n):
                ids, (method, path, body) = getattr(client, op)()
                started = time.perf_counter()
                status, answer = client.request(method, path, body)
                wall += time.perf_counter() - started
                problems += op != "healthz" and isinstance(
                    client.check(op, ids, status, answer), str
                )
        cpu = meter.seconds()
        print(
            f"cost of one {op:<8} (x{n}, one client): wall {1000 * wall / n:6.1f} ms, CPU "
            f"gunicorn {1000 * cpu.get('gunicorn', 0) / n:5.1f} ms + PostgreSQL "
            f"{1000 * cpu.get('postgres', 0) / n:5.1f} ms; {problems} bad answers"
        )


# --------------------------------------------------------------------------- main


def run(args, procs: Processes) -> int:
    var = setup_environment(args)
    champion, token = build_model()
    high, pool = seed_traffic(champion, args)
    from django.db import connection

    start_celery(procs, args.celery_concurrency)
    explained = precompute_by_worker(high)
    connection.close()
    port = start_gunicorn(procs, args.workers)
    print(f"setup: {len(high)} high-risk incidents, {explained} explanations precomputed by the")
    print(f"Celery worker; ingest pool {len(pool)} scored events; gunicorn on 127.0.0.1:{port}")
    from explain.models import Explanation

    setup = {"pool": pool, "incidents": [incident for _, incident, _ in high]}
    warm = [Client(n, port, token, setup, args, Tally(), "warm-") for n in range(args.workers * 2)]
    run_clients(warm, 5.0, record=False)  # every worker loads the model and its explainer
    explanations_before = Explanation.objects.count()
    connection.close()
    tally = Tally()
    clients = [Client(n, port, token, setup, args, tally) for n in range(args.clients)]
    background, sent = background_precompute(args.background_every)
    loads = [os.getloadavg()]
    with CpuMeter(procs, args.database) as meter:
        seconds = run_clients(clients, args.duration, record=True, background=background)
    loads.append(os.getloadavg())
    cpu = meter.seconds()
    failures = report(args, tally, seconds, loads)
    print(
        f"CPU seconds during the {seconds:.0f} s ({os.cpu_count()} CPUs: "
        f"{seconds * (os.cpu_count() or 1):.0f} CPU-s in all): "
        + ", ".join(f"{name} {value:.1f}" for name, value in cpu.items())
        + f"; ours {sum(cpu.values()):.1f}"
    )
    done = sum(len(lat) for lat in tally.latencies.values())
    app = cpu.get("gunicorn", 0.0) + cpu.get("postgres", 0.0)
    print(f"server CPU per request (gunicorn + PostgreSQL): {1000 * app / max(done, 1):.1f} ms")
    time.sleep(2.0)  # let a background task that is still running finish its batch
    stored = Explanation.objects.count() - explanations_before
    print(f"background: {len(sent)} explain_recent tasks enqueued, {stored} explanations stored")
    ok = verify(tally)
    if args.cost_requests:
        alone = argparse.Namespace(**{**vars(args), "resend": 0.0})
        costs = Client(0, port, token, setup, alone, Tally(), "cost-")
        operation_costs(costs, procs, args.database, args.cost_requests)
    failures += server_log_problems(var)
    if dead := procs.dead():
        print(f"exited during the run: {', '.join(dead)}")
        failures += 1
    return 0 if ok and not failures else 1


def main():
    args = parse_args()
    print("command: " + " ".join([Path(sys.executable).name, *sys.argv]), flush=True)
    procs = Processes(Path(args.var_dir))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        code = run(args, procs)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    finally:
        STOP.set()
        procs.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
