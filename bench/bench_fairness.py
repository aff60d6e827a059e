"""Benchmark the fairness core against fairlearn's MetricFrame.

    .venv/bin/python bench/bench_fairness.py --rows 1000000 --groups 5 --boot 1000

Seeded synthetic SOC events (base rate and false-positive rate differ by group).
Times fairlearn's MetricFrame (selection rate, TPR, FPR, then ``difference()``
and ``ratio()``), the core without bootstrap (``contingency`` + ``group_metrics``)
and the full core audit with ``--boot`` resamples, checks that every value
agrees with fairlearn to 1e-9 and prints the times and speed-ups.
"""

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fairlearn.metrics import (  # noqa: E402
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)

from fairness import metrics_core as mc  # noqa: E402

TOLERANCE = 1e-9
METRICS = ("selection_rate", "tpr", "fpr")


def make_events(rows: int, groups: int, seed: int, weighted: bool):
    rng = np.random.default_rng(seed)
    names = np.array([f"region_{i}" for i in range(groups)])
    g = rng.integers(0, groups, rows)
    base_rate = np.linspace(0.01, 0.05, groups)[g]
    fpr = np.linspace(0.02, 0.06, groups)[g]
    y = (rng.random(rows) < base_rate).astype(np.int64)
    d = np.where(y == 1, rng.random(rows) < 0.85, rng.random(rows) < fpr).astype(np.int64)
    w = rng.uniform(0.5, 2.0, rows) if weighted else None
    return y, d, names[g], w


def run_fairlearn(y, d, s, w):
    params = None if w is None else {k: {"sample_weight": w} for k in METRICS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
            },
            y_true=y,
            y_pred=d,
            sensitive_features=s,
            sample_params=params,
        )
        return mf.by_group, mf.difference(), mf.ratio()


def run_core(y, d, s, w):
    return mc.group_metrics(mc.contingency(y, y_pred=d, sensitive={"region": s}, sample_weight=w))


def run_core_boot(y, d, s, w, boot):
    return mc.audit(y, y_pred=d, sensitive={"region": s}, sample_weight=w, n_boot=boot)


def timed(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, times


def max_abs_diff(core: mc.GroupMetrics, fairlearn) -> float:
    by_group, difference, ratio = fairlearn
    names = {"selection_rate": "demographic_parity", "tpr": "equal_opportunity", "fpr": "fpr"}
    diffs = []
    for metric in METRICS:
        diffs.append(np.max(np.abs(core.rates[metric] - by_group[metric].to_numpy())))
        prefix = names[metric]
        diffs.append(abs(core.aggregates[f"{prefix}_difference"] - difference[metric]))
        diffs.append(abs(core.aggregates[f"{prefix}_ratio"] - ratio[metric]))
    return float(max(diffs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each core variant")
    parser.add_argument("--fairlearn-repeat", type=int, default=1)
    parser.add_argument("--weighted", action="store_true", help="random sample weights")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    y, d, s, w = make_events(args.rows, args.groups, args.seed, args.weighted)
    print(f"rows={args.rows} groups={args.groups} boot={args.boot} weighted={args.weighted}")
    run_core(y, d, s, w)  # warm-up: first-touch page faults, imports
    theirs, t_fl = timed(lambda: run_fairlearn(y, d, s, w), args.fairlearn_repeat)
    ours, t_core = timed(lambda: run_core(y, d, s, w), args.repeat)
    audit, t_boot = timed(lambda: run_core_boot(y, d, s, w, args.boot), args.repeat)

    diff = max(max_abs_diff(ours, theirs), max_abs_diff(audit.metrics, theirs))
    print(f"max abs diff vs fairlearn: {diff:.3e} (tolerance {TOLERANCE:g})")
    fl, core, boot = (statistics.median(t) for t in (t_fl, t_core, t_boot))
    for label, t in (
        ("fairlearn MetricFrame:", t_fl),
        ("core, no bootstrap:", t_core),
        (f"core audit, {args.boot} resamples:", t_boot),
    ):
        spread = f"min {min(t):.4f}, max {max(t):.4f}"
        print(f"{label:33s}{statistics.median(t):9.4f} s (median of {len(t)}; {spread})")
    print(f"speed-up, no bootstrap:          {fl / core:9.1f}x")
    print(f"speed-up, with bootstrap:        {fl / boot:9.1f}x")
    print(f"verdict: {audit.verdict}")
    if diff > TOLERANCE:
        print("FAIL: values differ from fairlearn")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
