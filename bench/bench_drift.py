"""Benchmark the drift core against Evidently's DataDriftPreset.

Generates seeded data (by default 1,000,000 current rows x 30 numeric
features against a 100,000-row reference, a few features shifted), times

* ``drift_core.build_reference`` once (a registration-time cost),
* ``drift_core.compare`` on the current DataFrame (best of ``--repeat``),
  which computes PSI, KS statistic and p-value, Wasserstein-1 and its
  normalised form for every feature plus the Holm correction and verdicts,
* ``evidently.Report([DataDriftPreset()]).run(current, reference)`` with
  default settings (best of ``--evidently-repeat``),

on the same pandas DataFrames in memory, and prints the speedup.  As a sanity
check it also compares Evidently's per-column drift scores (normalised
Wasserstein for numeric columns with more than 1000 rows) with ours.

Evidently lives in a separate virtualenv (see docs/benchmarks.md)::

    .venv-bench/bin/python bench/bench_drift.py
    .venv/bin/python bench/bench_drift.py --no-evidently
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitoring import drift_core  # noqa: E402

T = TypeVar("T")


def make_data(rows: int, ref_rows: int, features: int, seed: int):
    """Seeded normal features; every tenth feature is shifted in the current window."""
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(features)]
    ref = pd.DataFrame(rng.normal(size=(ref_rows, features)), columns=names)
    cur_values = rng.normal(size=(rows, features))
    cur_values[:, ::10] += 0.5
    cur = pd.DataFrame(cur_values, columns=names)
    return ref, cur, names


@dataclass
class Timing:
    best: float  # wall seconds, best run
    median: float  # wall seconds, median run
    cpu: float  # process CPU seconds (all threads), least of the runs

    def __str__(self) -> str:
        return f"{self.best:8.3f} s wall (median {self.median:.3f}), {self.cpu:.3f} s CPU"


def timed(fn: Callable[[], T], repeat: int) -> tuple[Timing, T]:
    """Time ``repeat`` (at least 1) calls; CPU time is reported because the machine is
    shared and wall time inflates when other jobs hold the cores."""
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(repeat):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    return Timing(min(walls), float(np.median(walls)), min(cpus)), result


def run_evidently(ref: pd.DataFrame, cur: pd.DataFrame, repeat: int):
    from evidently import Report
    from evidently.presets import DataDriftPreset

    def once():
        return Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)

    timing, snapshot = timed(once, repeat)
    scores = {}
    for metric in snapshot.dict()["metrics"]:
        match = re.match(r"ValueDrift\(column=([^,]+),method=([^,]+)", metric["metric_name"])
        if match:
            scores[match.group(1)] = (match.group(2), float(metric["value"]))
    return timing, scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="current rows")
    parser.add_argument("--ref-rows", type=int, default=100_000, help="reference rows")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=5, help="core timing: best of N")
    parser.add_argument("--evidently-repeat", type=int, default=1, help="Evidently: best of N")
    parser.add_argument("--workers", type=int, default=None, help="threads for compare")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-evidently", action="store_true", help="time the core only")
    args = parser.parse_args(argv)

    ref, cur, names = make_data(args.rows, args.ref_rows, args.features, args.seed)
    print(
        f"data: current {args.rows:,} x {args.features}, reference {args.ref_rows:,} rows; "
        f"{os.cpu_count()} CPUs; numpy {np.__version__}, pandas {pd.__version__}, "
        f"python {platform.python_version()}"
    )
    kinds = dict.fromkeys(names, drift_core.NUMERIC)
    build, profile = timed(lambda: drift_core.build_reference(ref, kinds), 1)
    core, report = timed(
        lambda: drift_core.compare(profile, cur, workers=args.workers), args.repeat
    )
    print(f"{'core build_reference (once, at registration):':47s}{build}")
    print(f"{f'core compare (best of {args.repeat}):':47s}{core}")
    print(f"core verdict: drifted {report.dataset['drifted_features']}")
    if args.no_evidently:
        return 0

    ev, scores = run_evidently(ref, cur, args.evidently_repeat)
    print(f"{f'evidently DataDriftPreset (best of {args.evidently_repeat}):':47s}{ev}")
    print(
        f"{'speedup, compare only (wall / CPU):':47s}{ev.best / core.best:8.1f}x / "
        f"{ev.cpu / core.cpu:.1f}x"
    )
    total_wall, total_cpu = build.best + core.best, build.cpu + core.cpu
    print(
        f"{'speedup, build + compare (wall / CPU):':47s}{ev.best / total_wall:8.1f}x / "
        f"{ev.cpu / total_cpu:.1f}x"
    )
    diffs = [
        abs(value - report.features[col].statistics["wasserstein_norm"])
        for col, (method, value) in scores.items()
        if method.startswith("Wasserstein")
    ]
    if diffs:
        print(
            f"normalised Wasserstein vs Evidently: {len(diffs)} columns, "
            f"max abs difference {max(diffs):.2e}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
