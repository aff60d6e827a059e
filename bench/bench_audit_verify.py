"""The audit page's chain verification at 300,000 events: full (before) vs from the newest
checkpoint (after), in the same run.

    .venv/bin/python bench/bench_audit_verify.py [--events 300000 --new 100 --repeat 5]
                                                 [--server postgres://postgres@127.0.0.1:5432]

Sets up a scratch database (SQLite in a temporary GOVSITE_VAR_DIR, or PostgreSQL with
--server, creating and dropping govsite_bench_audit), writes --events audit events with a
valid hash chain (bulk inserts of events built and hashed as audit_record does, with
actors, payloads and actions like the product's), signs a checkpoint of the head
(`audit_checkpoint_create(full=True)`, what the nightly beat entry does), then appends
--new events through `audit_record`. Then, alternating --repeat times, an auditor loads

- before: `/registry/audit/?verify=full`, the page as it was (the whole chain re-verified
  on every view), and
- after: `/registry/audit/`, verifying from the newest checkpoint,

through Django's test client (the view, its queries and the template), and prints each
median, the ratio, and the verification alone (`audit_verify(full=True|False)`).
"""

import argparse
import base64
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "govsite_bench_audit"
ACTIONS = [
    "version.registered",
    "version.transitioned",
    "approval.requested",
    "approval.decided",
    "traffic.changed",
    "permission.denied",
    "audit.exported",
    "auth.login_failed",
]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--new", type=int, default=100, help="events after the checkpoint")
    p.add_argument("--repeat", type=int, default=5, help="page loads of each kind")
    p.add_argument("--server", default="", help="PostgreSQL server URL (default: SQLite)")
    return p.parse_args()


def setup_environment(args) -> None:
    var = tempfile.mkdtemp(prefix="bench-audit-")
    env = {
        "GOVSITE_VAR_DIR": var,
        "DJANGO_SETTINGS_MODULE": "govsite.settings",
        "SECRET_KEY": "bench-" + "x" * 50,
        "CELERY_BROKER_URL": "memory://",
        "LOG_LEVEL": "WARNING",
        "ALLOWED_HOSTS": "testserver",
        "AUDIT_CHECKPOINT_EVERY": "0",
        "AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
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
    from django.db import connection

    vendor = connection.vendor
    connection.close()
    if args.server:
        subprocess.run(
            ["psql", args.server + "/postgres", "-qc", f"DROP DATABASE {DB}"], check=True
        )
    shutil.rmtree(os.environ["GOVSITE_VAR_DIR"], ignore_errors=True)
    args.vendor = vendor


def build_trail(n: int, people: list) -> None:
    """n chained events, hashed exactly as audit_record hashes them."""
    from django.utils import timezone

    from core.integrity import GENESIS
    from core.models import AuditChainHead, AuditEvent

    start = timezone.now() - timedelta(days=365)
    prev, batch = GENESIS, []
    for i in range(n):
        actor = people[i % len(people)] if i % 3 else None
        event = AuditEvent(
            created_at=start + timedelta(seconds=100 * i),
            actor=actor,
            actor_ref=actor.pk if actor else None,
            actor_label=actor.username if actor else "system",
            action=ACTIONS[i % len(ACTIONS)],
            object_type="MLModelVersion",
            object_id=str(i % 500),
            model_name=f"threat-{i % 7}",
            payload={"from": "staging", "to": "production", "notes": f"step {i}", "n": i},
            prev_hash=prev,
        )
        event.row_hash = prev = event.compute_hash()
        batch.append(event)
        if len(batch) == 5000:
            AuditEvent.objects.bulk_create(batch)
            batch = []
    AuditEvent.objects.bulk_create(batch)
    AuditChainHead.objects.update_or_create(pk=1, defaults={"last_hash": prev, "count": n})


def people():
    from django.contrib.auth.models import Group, User

    from core import roles

    roles.roles_sync()
    made = []
    for name, role in [("mira", "ML engineer"), ("alex", "Approver"), ("otto", "Auditor")]:
        user = User.objects.create_user(name, password="bench-password-1", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        made.append(user)
    return made


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main():
    args = parse_args()
    setup_environment(args)
    try:
        from django.test import Client

        from core.audit import audit_record, audit_verify
        from core.checkpoints import audit_checkpoint_create

        staff = people()
        t0 = time.perf_counter()
        build_trail(args.events, staff)
        print(f"built {args.events:,} chained events in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        checkpoint = audit_checkpoint_create(full=True)
        print(f"nightly full verification + checkpoint: {time.perf_counter() - t0:.2f} s")
        for i in range(args.new):
            audit_record(action="version.transitioned", actor=staff[0], payload={"i": i})
        client = Client()
        client.force_login(staff[2])

        def page(url):
            def load():
                response = client.get(url)
                assert response.status_code == 200
                total = args.events + args.new
                assert f"verified</span> {total} events" in response.content.decode()

            return load

        before, after = [], []
        for _ in range(args.repeat):  # alternating, so load changes hit both alike
            before += timed(page("/registry/audit/?verify=full"), 1)
            after += timed(page("/registry/audit/"), 1)
        verify_full = timed(lambda: audit_verify(full=True), max(1, args.repeat // 2))
        verify_incr = timed(lambda: audit_verify(full=False), args.repeat)
        teardown(args)
    except BaseException:
        teardown(args)
        raise
    b, a = statistics.median(before), statistics.median(after)
    vf, vi = statistics.median(verify_full), statistics.median(verify_incr)
    print(
        f"database: {args.vendor}; events: {args.events:,} + {args.new} after the checkpoint "
        f"of {checkpoint.seq:,}; {args.repeat} page loads each"
    )
    print(
        f"before: audit page, full verification:       {b:8.3f} s (median; min {min(before):.3f})"
    )
    print(f"after:  audit page, from the checkpoint:     {a:8.3f} s (median; min {min(after):.3f})")
    print(f"speed-up (page):                             {b / a:8.1f}x")
    print(
        f"verification alone: full {vf:.3f} s, from the checkpoint {vi * 1000:.1f} ms "
        f"({vf / vi:.0f}x)"
    )


if __name__ == "__main__":
    main()
