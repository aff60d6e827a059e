"""A/B routing: in-process decisions/s from the published config, and the route endpoint's
requests/s on gunicorn against a trivial authenticated DRF endpoint on the same server.

    .venv/bin/python bench/bench_routing.py [--decisions 1000000 --seconds 5 --rounds 5]

Sets up a scratch database (SQLite in a temporary GOVSITE_VAR_DIR, or PostgreSQL with
--server, creating and dropping govsite_bench_routing), trains two small real
XGBoost versions, puts 1.0.0 in production and gives the approved 1.1.0 20 % of
traffic with a third version in shadow. Then:

1. fetches GET /api/v1/models/threat/traffic/ once and times PublishedRouter.decide
   over --decisions distinct entity keys (the SOC backend's in-process routing);
2. starts gunicorn on 127.0.0.1 and alternates rounds of GET /api/v1/me/ (who am I:
   token auth plus one query) and GET /api/v1/models/threat/route/?entity=... with
   the same token, --clients client processes, --seconds per round; prints each
   endpoint's median requests/s and the ratio route/me.

Loopback only; every phase is bounded by a count or a duration.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "govsite_bench_routing"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--decisions", type=int, default=1_000_000)
    p.add_argument("--seconds", type=float, default=5.0, help="per HTTP round")
    p.add_argument("--rounds", type=int, default=5, help="rounds per endpoint, alternating")
    p.add_argument("--clients", type=int, default=4, help="client processes")
    p.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    p.add_argument("--server", default="", help="PostgreSQL server URL (default: SQLite)")
    return p.parse_args()


def setup_environment(args) -> None:
    var = tempfile.mkdtemp(prefix="bench-routing-")
    env = {
        "GOVSITE_VAR_DIR": var,
        "DJANGO_SETTINGS_MODULE": "govsite.settings",
        "SECRET_KEY": "bench-" + "x" * 50,
        "CELERY_BROKER_URL": "memory://",
        "LOG_LEVEL": "WARNING",
    }
    if args.server:
        for sql in (f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB}"):
            subprocess.run(["psql", args.server + "/postgres", "-qc", sql], check=True)
        env["DATABASE_URL"] = f"{args.server}/{DB}"
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def teardown(args) -> None:
    """Drop the scratch database and folder."""
    import shutil

    from django.db import connection

    vendor = connection.vendor
    connection.close()
    if args.server:
        subprocess.run(
            ["psql", args.server + "/postgres", "-qc", f"DROP DATABASE {DB}"], check=True
        )
    shutil.rmtree(os.environ["GOVSITE_VAR_DIR"], ignore_errors=True)
    args.vendor = vendor


def build_split() -> str:
    """Three real versions, a 20 % challenger and a shadow; returns a SOC service token."""
    from django.contrib.auth.models import Group, User
    from knox.models import AuthToken

    from core import roles
    from registry import services, synthetic
    from registry.registration import register_training_result
    from registry.traffic import traffic_set
    from registry.training import train

    people = {}
    for name, role in (
        ("eng", roles.ML_ENGINEER),
        ("ap", roles.APPROVER),
        ("soc", roles.SOC_SERVICE),
    ):
        people[name] = User.objects.create_user(name, is_staff=role == roles.APPROVER)
        people[name].groups.add(Group.objects.get(name=role))
    result = train(synthetic.generate(3000, seed=3), num_boost_round=10, seed=3)
    versions = []
    for semver in ("1.0.0", "1.1.0", "1.2.0"):
        v = register_training_result(
            result=result, model_name="threat", version=semver, registered_by=people["eng"]
        )
        v.model.fairness_gate = False
        v.model.save(update_fields=["fairness_gate"])
        for to in ("testing", "staging"):
            v = services.version_transition(version=v, to=to, actor=people["eng"])
        versions.append(v)
    for v in versions[:2]:
        request = services.approval_request_create(version=v, actor=people["eng"])
        services.approval_decide(request=request, approver=people["ap"], decision="approve")
    services.version_transition(version=versions[0], to="production", actor=people["ap"])
    for v in versions:
        v.refresh_from_db()
    traffic_set(
        model=versions[0].model,
        challenger=versions[1],
        challenger_bp=2000,
        shadows=[versions[2]],
        actor=people["ap"],
    )
    _, token = AuthToken.objects.create(user=people["soc"], expiry=None)
    return token


def bench_in_process(url: str, token: str, n: int) -> tuple[float, float]:
    from registry.routing import CHALLENGER, PublishedRouter

    request = urllib.request.Request(
        url + "/api/v1/models/threat/traffic/", headers={"Authorization": f"Token {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        router = PublishedRouter(json.loads(response.read()))
    entities = [f"host-{i:08d}.corp.example" for i in range(n)]
    decide = router.decide
    start = time.perf_counter()
    challenger = sum(1 for e in entities if decide(e)[1] == CHALLENGER)
    elapsed = time.perf_counter() - start
    return n / elapsed, challenger / n


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(workers: int):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "govsite.wsgi:application"]
        + ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--log-level", "warning"],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2)
            return proc, port, url
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("gunicorn did not start")


def _client(port: int, token: str, path: str, seconds: float, seed: int) -> int:
    headers = {"Authorization": f"Token {token}"}
    done, i = 0, seed * 10_000_000
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path.format(i=i), headers=headers)
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}")
        done, i = done + 1, i + 1
    return done


def http_round(pool, port, token, path, args) -> float:
    start = time.perf_counter()
    counts = pool.starmap(
        _client, [(port, token, path, args.seconds, c) for c in range(args.clients)]
    )
    return sum(counts) / (time.perf_counter() - start)


def main():
    args = parse_args()
    setup_environment(args)
    token = build_split()
    from django.db import connection

    connection.close()
    proc, port, url = start_gunicorn(args.workers)
    try:
        rate, share = bench_in_process(url, token, args.decisions)
        print(
            f"in-process route decisions: {rate:,.0f}/s over {args.decisions:,} entities "
            f"(challenger share {share:.4f}, configured 0.2000)"
        )
        paths = {"me": "/api/v1/me/", "route": "/api/v1/models/threat/route/?entity=host-{i}"}
        rates = {"me": [], "route": []}
        with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
            http_round(
                pool, port, token, paths["me"], argparse.Namespace(**{**vars(args), "seconds": 1})
            )
            for _ in range(args.rounds):
                for name in ("me", "route"):
                    rates[name].append(http_round(pool, port, token, paths[name], args))
    finally:
        proc.terminate()
        proc.wait(30)
        teardown(args)
    me, route = statistics.median(rates["me"]), statistics.median(rates["route"])
    print(
        f"database: {args.vendor}; gunicorn sync workers={args.workers}; "
        f"clients={args.clients}; {args.rounds} rounds x {args.seconds:g} s per endpoint"
    )
    for name in ("me", "route"):
        each = ", ".join(f"{r:.1f}" for r in rates[name])
        median = statistics.median(rates[name])
        print(f"GET {paths[name].split('?')[0]:<34} median {median:7.1f} req/s (rounds: {each})")
    paired = [r / m for m, r in zip(rates["me"], rates["route"], strict=True)]
    print(
        f"ratio route / me: {route / me:.2f} of the medians; per round "
        f"{', '.join(f'{x:.2f}' for x in paired)}, median {statistics.median(paired):.2f} "
        "(goal >= 0.6)"
    )
    print(f"in-process goal >= 200,000/s: {'met' if rate >= 200_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
