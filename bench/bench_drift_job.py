"""Benchmark the whole drift job on a window of logged predictions read from PostgreSQL.

Setup (not timed): a throw-away model version with a 30-feature schema and a
reference profile of 100,000 rows, and 1,000,000 logged predictions in one
hourly window, inserted with psycopg's binary COPY. Every tenth feature is
shifted by 0.5 std (the data of bench/bench_drift.py).

Timed, in the same run:

* **drift job**: ``drift_window_compute`` for the window (read the window from
  PostgreSQL, compare all features and the score with the reference, upsert the
  result, feed the Page-Hinkley detector, raise alerts), best of ``--repeat``
  idempotent re-runs, with its read phase timed separately;
* **core in memory**: ``drift_core.compare`` on the same arrays already in memory;
* **Evidently** ``DataDriftPreset`` (default settings) on the same data in memory,
  run by ``.venv-bench/bin/python`` in a subprocess when that virtualenv exists.

Needs PostgreSQL::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/govsite_bench \\
        .venv/bin/python bench/bench_drift_job.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "govsite.settings")
# PostgreSQL is production mode (see settings): a bench run needs a key.
os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 50)
WINDOW = datetime(2026, 3, 2, 10, tzinfo=UTC)

EVIDENTLY = """
import json, sys, time
import numpy as np, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
d = np.load(sys.argv[1])
names = [f"f{i:02d}" for i in range(d["ref"].shape[1])]
ref, cur = pd.DataFrame(d["ref"], columns=names), pd.DataFrame(d["cur"], columns=names)
walls, cpus = [], []
for _ in range(int(sys.argv[2])):
    c0, w0 = time.process_time(), time.perf_counter()
    Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    walls.append(time.perf_counter() - w0); cpus.append(time.process_time() - c0)
print(json.dumps({"wall": min(walls), "cpu": min(cpus)}))
"""


def make_data(rows: int, ref_rows: int, features: int, seed: int):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(ref_rows, features))
    cur = rng.normal(size=(rows, features))
    cur[:, ::10] += 0.5
    return ref, cur, rng.beta(2, 8, size=ref_rows), rng.beta(2, 8, size=rows)


def create_version(ref, ref_scores):
    from monitoring import drift_core
    from registry.artifacts import artifact_put
    from registry.models import MLModel, MLModelVersion

    names = [f"f{i:02d}" for i in range(ref.shape[1])]
    columns = {n: ref[:, j] for j, n in enumerate(names)}
    columns[drift_core.SCORE] = ref_scores
    profile = drift_core.build_reference(columns, dict.fromkeys(names, "numeric"))
    sha, _ = artifact_put(data=profile.to_bytes(), suffix=".npz")
    model = MLModel.objects.create(name=f"bench-{uuid.uuid4().hex[:8]}", fairness_gate=False)
    return MLModelVersion.objects.create(
        model=model,
        version="1.0.0",
        model_path="bench/none.json",
        model_hash="0" * 64,
        feature_schema=[{"name": n, "type": "numeric"} for n in names],
        reference_hash=sha,
        reference_summary=profile.summary(),
        status=MLModelVersion.Status.STAGING,
    )


def copy_predictions(version, cur, scores) -> float:
    """Binary COPY of the window's rows; returns the seconds it took (setup, not timed)."""
    from django.db import connection

    from monitoring.models import PredictionLog

    table = PredictionLog._meta.db_table
    cols = "version_id, request_id, incident_id, entity, features, score, decision, role, "
    cols += "attributes, created_at, received_at"
    step = timedelta(hours=1) / len(scores)
    now = datetime.now(UTC)
    features = np.ascontiguousarray(cur, dtype="<f8")
    began = time.perf_counter()
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "text", "text", "text", "bytea", "float8", "bool", "text"]
                           + ["jsonb", "timestamptz", "timestamptz"])  # fmt: skip
            for i in range(len(scores)):
                copy.write_row(
                    (version.pk, f"bench-{version.pk}-{i}", "", f"e{i % 5000}",
                     features[i].tobytes(), float(scores[i]), bool(scores[i] >= 0.5),
                     "champion", "{}", WINDOW + step * i, now)
                )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
    return time.perf_counter() - began


def timed(fn, repeat: int):
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {"wall": min(walls), "median": float(np.median(walls)), "cpu": min(cpus)}, result


def run_evidently(ref, cur, repeat: int) -> dict | None:
    python = ROOT / ".venv-bench" / "bin" / "python"
    if not python.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, ref=ref, cur=cur)
        out = subprocess.run(
            [str(python), "-c", EVIDENTLY, str(path), str(repeat)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def line(label: str, t: dict) -> str:
    return f"{label:44s}{t['wall']:8.3f} s wall (median {t['median']:.3f}), {t['cpu']:.3f} s CPU"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ref-rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--evidently-repeat", type=int, default=1)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the bench rows afterwards")
    args = parser.parse_args(argv)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from monitoring import drift_core
    from monitoring.drift_jobs import drift_window_compute, reference_profile, window_arrays

    if connection.vendor != "postgresql":
        print("set DATABASE_URL to a PostgreSQL database", file=sys.stderr)
        return 2
    call_command("migrate", verbosity=0)
    ref, cur, ref_scores, scores = make_data(args.rows, args.ref_rows, args.features, 0)
    version = create_version(ref, ref_scores)
    pg_version = getattr(connection, "pg_version", "?")  # a PostgreSQL connection's
    print(
        f"window {args.rows:,} rows x {args.features} features (+ score), reference "
        f"{args.ref_rows:,} rows; PostgreSQL {pg_version}; {os.cpu_count()} CPUs"
    )
    copy_seconds = copy_predictions(version, cur, scores)
    print(f"{'setup: binary COPY of the window (not timed)':44s}{copy_seconds:8.1f} s")
    end = WINDOW + timedelta(hours=1)
    try:
        read, window = timed(
            lambda: window_arrays(version=version, start=WINDOW, end=end), args.repeat
        )
        X, s, order = window.X, window.scores, window.order
        # Rows were copied in event-time order, so the sort must give them back as logged.
        assert np.array_equal(X[order], cur) and np.array_equal(s[order], scores)
        job, result = timed(
            lambda: drift_window_compute(version=version, window_start=WINDOW, window_end=end),
            args.repeat,
        )
        profile = reference_profile(version)
        assert profile is not None  # create_version stored a reference
        current = {f"f{j:02d}": X[:, j] for j in range(X.shape[1])}
        current[drift_core.SCORE] = s
        core, _ = timed(lambda: drift_core.compare(profile, current), args.repeat)
        best = f"(best of {args.repeat}):"
        print(line(f"read window from PostgreSQL {best}", read))
        print(line(f"whole drift job {best}", job))
        print(line(f"core compare in memory {best}", core))
        print(f"job verdict: drifted {result.drifted_features}")
        print(f"{'job / in-memory core (wall):':44s}{job['wall'] / core['wall']:8.2f}x")
        if not args.no_evidently:
            ev = run_evidently(ref, cur, args.evidently_repeat)
            if ev is None:
                print("Evidently: .venv-bench not found, skipped")
            else:
                label = "evidently DataDriftPreset in memory:"
                print(f"{label:44s}{ev['wall']:8.3f} s wall, {ev['cpu']:.3f} s CPU")
                ratio = f"{ev['wall'] / job['wall']:8.1f}x / {ev['cpu'] / job['cpu']:.1f}x"
                print(f"{'evidently / whole job (wall / CPU):':44s}{ratio}")
    finally:
        if not args.keep:
            cleanup(version)
    return 0


def cleanup(version) -> None:
    from monitoring.models import Alert, DetectorState, DriftResult, PredictionLog

    PredictionLog.objects.filter(version=version)._raw_delete(PredictionLog.objects.db)
    for model in (DriftResult, DetectorState):
        model.objects.filter(version=version).delete()
    Alert.objects.filter(model=version.model).delete()
    model = version.model
    version.delete()
    model.delete()


if __name__ == "__main__":
    raise SystemExit(main())
