"""Benchmark explanations: raw shap, the API (uncached and cached) and the precompute.

    .venv/bin/python bench/bench_explain.py
    .venv/bin/python bench/bench_explain.py --database-url postgres://postgres@127.0.0.1:5432/NAME

One run, one machine: trains a 300-tree, depth-6 XGBoost model over 30 features
(``registry.synthetic.generate`` with noise features up to 30, ``registry.training.train``
without early stopping), then times

1. raw ``shap.TreeExplainer(booster).shap_values`` on one row (median of
   ``--single-repeat`` calls, each on a different row) and on 10,000 rows
   (median of ``--batch-repeat`` calls);
2. ``GET /api/ml/explain/{incident_id}`` on a warm gunicorn server (one sync
   worker, loopback, a service-account token) for ``--requests`` distinct
   uncached incidents, then for the same incidents again (now cached); p50/p95
   of the client-side wall time per request;
3. the precompute task (``explain.tasks.explain_predictions`` run in this
   process, without the broker hop) on 10,000 logged predictions: rows/s.

The scratch database is SQLite in a temporary GOVSITE_VAR_DIR unless
``--database-url`` names an empty database (it is migrated here). The goals of
docs/benchmarks.md ("Explanations") are checked and printed as ratios.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FEATURES = 30
sys.path.insert(0, str(ROOT))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="training events")
    parser.add_argument("--rows", type=int, default=10_000, help="batch and precompute rows")
    parser.add_argument("--requests", type=int, default=300, help="API requests per case")
    parser.add_argument("--single-repeat", type=int, default=300)
    parser.add_argument("--batch-repeat", type=int, default=5)
    parser.add_argument("--database-url", default="", help="an empty scratch database")
    return parser.parse_args()


def configure(args) -> Path:
    """Point Django at a scratch state folder (and database) before it is imported."""
    var_dir = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    os.environ["GOVSITE_VAR_DIR"] = str(var_dir)
    os.environ.pop("ARTIFACT_ROOT", None)
    os.environ["CELERY_BROKER_URL"] = "filesystem://"
    # A scratch database is production mode (see settings): it needs a key.
    os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 50)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "govsite.settings")
    import django

    django.setup()
    return var_dir


def timed(fn, *a, **kw):
    started = time.perf_counter()
    result = fn(*a, **kw)
    return time.perf_counter() - started, result


def train_model(events: int):
    from registry import synthetic
    from registry.training import train

    # 30 features in all: the generator's core features plus standard-normal noise.
    noise = FEATURES - len(synthetic.feature_names(0))
    data = synthetic.generate(events, seed=0, n_noise_features=noise)
    result = train(data, num_boost_round=300, params={"max_depth": 6}, seed=0)
    assert len(result.feature_names) == FEATURES and result.booster.num_boosted_rounds() == 300
    held_out = synthetic.generate(
        args.rows + 2 * args.requests + 20, seed=1, n_noise_features=noise
    )
    return result, held_out.X


def bench_raw_shap(booster, X, single_repeat: int, batch_repeat: int) -> dict:
    import shap

    explainer = shap.TreeExplainer(booster)
    explainer.shap_values(X[:1])  # first call allocates; not part of the timing
    single = [timed(explainer.shap_values, X[i : i + 1])[0] for i in range(single_repeat)]
    batch = [timed(explainer.shap_values, X[: args.rows])[0] for _ in range(batch_repeat)]
    return {
        "single_p50": statistics.median(single),
        "single_p95": float(np.percentile(single, 95)),
        "batch": statistics.median(batch),
        "batch_rows_per_s": args.rows / statistics.median(batch),
    }


def setup_database(result, X):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from knox.models import AuthToken

    from core import roles
    from registry.registration import register_training_result

    call_command("migrate", verbosity=0)
    User = get_user_model()
    engineer = User.objects.create_user("bench-engineer")
    engineer.groups.add(Group.objects.get(name=roles.ML_ENGINEER))
    service = User.objects.create_user("bench-service")
    service.groups.add(Group.objects.get(name=roles.SOC_SERVICE))
    _, token = AuthToken.objects.create(user=service, expiry=None)
    version = register_training_result(
        result=result, model_name="bench-detector", version="1.0.0", registered_by=engineer
    )
    return version, token


def log_rows(version, X, prefix: str):
    import xgboost as xgb
    from django.utils import timezone

    from monitoring.models import PredictionLog
    from registry.services import version_load_booster

    scores = version_load_booster(version=version).predict(
        xgb.DMatrix(X, feature_names=version.feature_names)
    )
    now = timezone.now()
    PredictionLog.objects.bulk_create(
        [
            PredictionLog(
                version=version,
                request_id=f"req-{prefix}-{i}",
                incident_id=f"{prefix}-{i}",
                features=np.ascontiguousarray(X[i], dtype="<f8").tobytes(),
                score=float(scores[i]),
                decision=bool(scores[i] >= version.decision_threshold),
                created_at=now,
            )
            for i in range(len(X))
        ],
        batch_size=2000,
    )
    return [f"{prefix}-{i}" for i in range(len(X))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str, token: str) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Token {token}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return time.perf_counter() - started, response.status, body


def start_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "govsite.wsgi:application",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
    )
    for _ in range(300):
        try:
            if get(port, "/healthz", "")[1] == 200:
                return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("gunicorn did not start")


def percentiles(times: list[float]) -> dict:
    return {"p50": statistics.median(times), "p95": float(np.percentile(times, 95))}


def bench_api(port: int, token: str, warmup: list[str], incidents: list[str]) -> dict:
    for incident in warmup:  # loads the booster and builds the explainer once
        assert get(port, f"/api/ml/explain/{incident}", token)[1] == 200
    out = {}
    for case in ("uncached", "cached"):
        times = []
        for incident in incidents:
            elapsed, status, body = get(port, f"/api/ml/explain/{incident}", token)
            assert status == 200, body
            assert json.loads(body)["cached"] is (case == "cached")
            times.append(elapsed)
        out[case] = percentiles(times)
    # The server's floor: a request that only runs SELECT 1 (no auth, no explanation).
    out["healthz"] = percentiles([get(port, "/healthz", "")[0] for _ in incidents])
    return out


def bench_service(version, incidents: list[str]) -> dict:
    """The same two paths in this process, without HTTP: the explanation work alone."""
    from explain.services import explanation_for_prediction
    from monitoring.models import PredictionLog

    rows = list(
        PredictionLog.objects.filter(incident_id__in=incidents).select_related("version__model")
    )
    out = {}
    for case in ("uncached", "cached"):
        times = []
        for row in rows:
            elapsed, (_, cached) = timed(explanation_for_prediction, prediction=row)
            assert cached is (case == "cached")
            times.append(elapsed)
        out[case] = percentiles(times)
    return out


def bench_precompute(version, incidents: list[str]) -> dict:
    from explain.models import Explanation
    from explain.tasks import explain_predictions
    from monitoring.models import PredictionLog

    version.model.explain_threshold = 0.0  # every row counts as high-risk here
    version.model.save(update_fields=["explain_threshold"])
    ids = list(PredictionLog.objects.filter(incident_id__in=incidents).values_list("pk", flat=True))
    before = Explanation.objects.count()
    elapsed, report = timed(explain_predictions, ids)
    assert report["explained"] == len(ids) == Explanation.objects.count() - before
    return {"seconds": elapsed, "rows": len(ids), "rows_per_s": len(ids) / elapsed, **report}


def main():
    import shap
    import xgboost

    result, X = train_model(args.events)
    raw = bench_raw_shap(result.booster, X, args.single_repeat, args.batch_repeat)
    version, token = setup_database(result, X)
    n = args.requests
    warmup = log_rows(version, X[:20], "WARM")
    api_ids = log_rows(version, X[20 : 20 + n], "API")
    pre_ids = log_rows(version, X[20 + n : 20 + n + args.rows], "PRE")
    service = bench_service(version, log_rows(version, X[20 + n + args.rows :], "SVC"))
    port = free_port()
    server = start_server(port)
    try:
        api = bench_api(port, token, warmup, api_ids)
    finally:
        server.terminate()
        server.wait()
    pre = bench_precompute(version, pre_ids)
    report(raw, api, service, pre, shap.__version__, xgboost.__version__)


def report(raw, api, service, pre, shap_version, xgb_version):
    from django.db import connection

    ms = 1000.0
    print(
        f"shap {shap_version}, xgboost {xgb_version}, {os.cpu_count()} CPUs, "
        f"database {connection.vendor}; 300 trees, depth 6, 30 features"
    )
    print(
        f"raw shap, 1 row:          p50 {raw['single_p50'] * ms:8.3f} ms  "
        f"p95 {raw['single_p95'] * ms:8.3f} ms"
    )
    print(
        f"raw shap, {args.rows} rows:    {raw['batch']:8.3f} s   "
        f"({raw['batch_rows_per_s']:,.0f} rows/s)"
    )
    for case in ("uncached", "cached", "healthz"):
        print(
            f"API {case:<9} ({args.requests} req): p50 {api[case]['p50'] * ms:8.3f} ms  "
            f"p95 {api[case]['p95'] * ms:8.3f} ms"
        )
    for case in ("uncached", "cached"):
        print(
            f"service {case:<9} (in process): p50 {service[case]['p50'] * ms:8.3f} ms  "
            f"p95 {service[case]['p95'] * ms:8.3f} ms"
        )
    print(
        f"precompute task, {pre['rows']} rows: {pre['seconds']:8.3f} s   "
        f"({pre['rows_per_s']:,.0f} rows/s, {pre['batches']} shap calls)"
    )
    throughput = pre["rows_per_s"] / raw["batch_rows_per_s"]
    speedup = api["uncached"]["p50"] / api["cached"]["p50"]
    # The cached request is the fixed part (HTTP, token, DB read, JSON); the uncached
    # one adds the shap call and the insert.
    budget = 2 * raw["single_p50"] + api["cached"]["p50"]
    print(f"precompute / raw throughput: {throughput:5.2f}x (goal >= 0.9)")
    print(
        "service-level cache speed-up (uncached p50 / cached p50): "
        f"{service['uncached']['p50'] / service['cached']['p50']:5.2f}x"
    )
    print(f"cached speed-up (uncached p50 / cached p50): {speedup:5.2f}x (goal >= 5)")
    print(
        f"uncached p50 / (2 x raw 1-row p50 + cached p50): "
        f"{api['uncached']['p50'] / budget:5.2f} (goal <= 1)"
    )


if __name__ == "__main__":
    args = parse_args()
    scratch = configure(args)
    try:
        main()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
