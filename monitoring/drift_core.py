"""Drift statistics core: reference profiles, window comparison, Page-Hinkley.

This module is deliberately free of Django so that it can run in a worker, a
notebook or a benchmark; it depends on numpy and scipy only.  docs/drift.md
defines every statistic and rule used here; the summary below is the contract.

Reference profile (``build_reference``)
    Built once from held-out data at model registration.  Per numeric feature:
    a seeded subsample (at most ``max_sample`` rows) kept sorted, the interior
    decile edges of the full column with duplicate edges collapsed, the
    reference proportion per bin, mean and population std.  Per categorical
    feature: level -> count.  The model score is a numeric column named
    ``SCORE``.  Serialised without pickle (``to_bytes`` / ``from_bytes``).

Window comparison (``compare`` / ``compare_matrix``)
    numeric:     PSI on the reference bins (proportions floored at 1e-4),
                 two-sample Kolmogorov-Smirnov statistic and p-value (same
                 numbers as ``scipy.stats.ks_2samp(ref, cur)``), Wasserstein-1
                 (same as ``scipy.stats.wasserstein_distance``) and
                 Wasserstein-1 divided by the reference std.
    categorical: chi-squared goodness of fit against the reference proportions
                 (``scipy.stats.chisquare``), Jensen-Shannon distance in base 2
                 (``scipy.spatial.distance.jensenshannon(p, q, base=2)``), PSI
                 over levels.
    Per-feature p-values (KS or chi-squared) are corrected across features
    (Holm by default, Benjamini-Hochberg optional).  A feature is drifted when
    its adjusted p-value is below ``alpha`` and an effect size reaches the
    warning threshold; the dataset drifts when at least ``drift_share`` of the
    tested features drift or the score drifts.

Streaming (``PageHinkley``)
    Page-Hinkley test on the score stream with a JSON-safe state, so that a
    detector can be saved between batches and resumed in another process.

Non-finite values (NaN, +-inf) are treated as missing: they are dropped and
counted in ``n_missing``; ``n`` always means the number of values used.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np
from scipy import special, stats

_R = TypeVar("_R")

SCORE = "__score__"
NUMERIC = "numeric"
CATEGORICAL = "categorical"
KINDS = (NUMERIC, CATEGORICAL)

N_BINS = 10
#: Proportions below this are raised to it before PSI so that an empty bin
#: contributes a large but finite term instead of an infinite one.
PROPORTION_FLOOR = 1e-4
#: Windows (or references) with fewer usable values get no verdict.
DEFAULT_MIN_SAMPLES = 100
DEFAULT_MAX_SAMPLE = 100_000
#: scipy.stats.ks_2samp(method="auto") uses the exact null distribution when
#: both samples have at most this many values and the asymptotic one otherwise.
KS_EXACT_MAX_N = 10_000

OK = "ok"
INSUFFICIENT = "insufficient_data"
MISSING = "missing"
SEVERITIES = ("none", "warning", "critical")

_FORMAT = "drift-reference"
_FORMAT_VERSION = 1


# --------------------------------------------------------------------------
# Reference profile
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NumericReference:
    """Reference distribution of one numeric feature.

    ``sample`` is sorted and finite.  ``edges`` are the interior bin edges
    (ascending, unique, at most ``N_BINS - 1``); bin k is ``(edges[k-1],
    edges[k]]`` with the outer bins open to -inf/+inf, so ``proportions`` has
    ``len(edges) + 1`` entries.  ``n``/``mean``/``std`` describe the full
    finite column, not only the sample.
    """

    sample: np.ndarray
    edges: np.ndarray
    proportions: np.ndarray
    n: int
    n_missing: int
    mean: float | None
    std: float | None
    kind: str = field(default=NUMERIC, init=False)
    # Derived from ``sample`` in __post_init__.
    _values: np.ndarray = field(init=False, repr=False)
    _cum: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Distinct sample values with their cumulative counts: the KS and
        # Wasserstein kernels evaluate the reference ECDF only there.  The
        # sample is sorted, so the last value of each run of ties marks them.
        s = self.sample
        last = np.append(s[1:] != s[:-1], True) if s.size else np.zeros(0, dtype=bool)
        object.__setattr__(self, "_values", s[last])
        object.__setattr__(self, "_cum", np.flatnonzero(last) + 1)


@dataclass(frozen=True, eq=False)
class CategoricalReference:
    """Reference level counts of one categorical feature (levels sorted).

    ``levels`` is float64 for integer codes or a unicode array for strings.
    """

    levels: np.ndarray
    counts: np.ndarray
    n: int
    n_missing: int
    kind: str = field(default=CATEGORICAL, init=False)


FeatureReference = NumericReference | CategoricalReference


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Per-feature reference distributions of one model version."""

    features: dict[str, FeatureReference]
    max_sample: int = DEFAULT_MAX_SAMPLE
    seed: int = 0

    def to_bytes(self) -> bytes:
        """Serialise as a compressed ``.npz`` (no pickle) with a JSON header."""
        arrays: dict[str, np.ndarray] = {}
        header: dict[str, Any] = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "max_sample": self.max_sample,
            "seed": self.seed,
            "features": [],
        }
        for i, (name, ref) in enumerate(self.features.items()):
            meta: dict[str, Any] = {"name": name, "kind": ref.kind, "n": ref.n}
            meta["n_missing"] = ref.n_missing
            if isinstance(ref, NumericReference):
                meta.update(mean=ref.mean, std=ref.std)
                arrays[f"f{i}_sample"] = ref.sample
                arrays[f"f{i}_edges"] = ref.edges
                arrays[f"f{i}_proportions"] = ref.proportions
            else:
                arrays[f"f{i}_levels"] = ref.levels
                arrays[f"f{i}_counts"] = ref.counts
            header["features"].append(meta)
        raw = json.dumps(header, allow_nan=False).encode()
        arrays["header"] = np.frombuffer(raw, dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, allow_pickle=False, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        """Inverse of ``to_bytes``; refuses pickled content."""
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            header = json.loads(npz["header"].tobytes().decode())
            if header.get("format") != _FORMAT or header.get("version") != _FORMAT_VERSION:
                raise ValueError("not a drift reference profile of a known version")
            features: dict[str, FeatureReference] = {}
            for i, meta in enumerate(header["features"]):
                common = {"n": int(meta["n"]), "n_missing": int(meta["n_missing"])}
                if meta["kind"] == NUMERIC:
                    features[meta["name"]] = NumericReference(
                        sample=npz[f"f{i}_sample"],
                        edges=npz[f"f{i}_edges"],
                        proportions=npz[f"f{i}_proportions"],
                        mean=meta["mean"],
                        std=meta["std"],
                        **common,
                    )
                else:
                    features[meta["name"]] = CategoricalReference(
                        levels=npz[f"f{i}_levels"], counts=npz[f"f{i}_counts"], **common
                    )
        return cls(features=features, max_sample=header["max_sample"], seed=header["seed"])

    def summary(self) -> dict[str, Any]:
        """JSON-safe description for a database JSON field and for pages."""
        out: dict[str, Any] = {}
        for name, ref in self.features.items():
            item: dict[str, Any] = {"kind": ref.kind, "n": ref.n, "n_missing": ref.n_missing}
            if isinstance(ref, NumericReference):
                item.update(
                    mean=ref.mean,
                    std=ref.std,
                    sample_size=int(ref.sample.size),
                    edges=_floats(ref.edges),
                    proportions=_floats(ref.proportions),
                )
            else:
                item["levels"] = {
                    _level_key(v): int(c) for v, c in zip(ref.levels, ref.counts, strict=True)
                }
            out[name] = item
        return {"max_sample": self.max_sample, "seed": self.seed, "features": out}


def build_reference(
    columns: Mapping[str, Any],
    kinds: Mapping[str, str],
    *,
    max_sample: int = DEFAULT_MAX_SAMPLE,
    seed: int = 0,
) -> ReferenceProfile:
    """Build the reference profile from held-out data.

    ``kinds`` maps each column to "numeric" or "categorical"; ``SCORE`` may be
    left out and is then numeric.  Numeric columns longer than ``max_sample``
    are subsampled without replacement with ``numpy.random.default_rng(seed)``;
    equal-length columns therefore keep the same rows.
    """
    if max_sample < 1:
        raise ValueError("max_sample must be positive")
    features: dict[str, FeatureReference] = {}
    for name, values in columns.items():
        kind = kinds.get(name, NUMERIC if name == SCORE else None)
        if kind == NUMERIC:
            features[name] = _numeric_reference(np.asarray(values), max_sample, seed)
        elif kind == CATEGORICAL:
            levels, counts, n_missing = _count_levels(np.asarray(values))
            n = int(counts.sum())
            features[name] = CategoricalReference(levels, counts, n, n_missing)
        else:
            raise ValueError(f"column {name!r}: kind must be one of {KINDS}, got {kind!r}")
    return ReferenceProfile(features=features, max_sample=max_sample, seed=seed)


def _numeric_reference(values: np.ndarray, max_sample: int, seed: int) -> NumericReference:
    """Decile edges, bin proportions and moments of the full column, plus a sample.

    Edges are ``numpy.quantile`` (linear interpolation) at 0.1, ..., 0.9.  Tied
    values can make several deciles equal; duplicates are collapsed, so a
    column with heavy ties gets fewer than ten bins and a constant column gets
    two: ``(-inf, c]`` holding everything and ``(c, +inf)`` holding nothing.
    """
    values = np.asarray(values, dtype=np.float64)
    full = _sorted_finite(values)
    n = int(full.size)
    if n == 0:
        empty = np.empty(0)
        return NumericReference(empty, empty, np.ones(1), 0, int(values.size), None, None)
    edges = np.unique(np.quantile(full, np.arange(1, N_BINS) / N_BINS))
    proportions = _bin_counts(full, edges) / n
    if values.size > max_sample:
        rows = np.random.default_rng(seed).choice(values.size, size=max_sample, replace=False)
        sample = _sorted_finite(values[np.sort(rows)])
    else:
        sample = full
    return NumericReference(
        sample=sample,
        edges=edges,
        proportions=proportions,
        n=n,
        n_missing=int(values.size) - n,
        mean=float(np.mean(full)),
        std=float(np.std(full)),
    )


# --------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """Effect-size thresholds of the per-feature and dataset verdicts.

    A feature with a significant adjusted p-value is drifted when any of its
    effect sizes reaches the warning level, and critical when any reaches the
    critical level.  ``wasserstein_*`` are in units of the reference std.
    The critical levels correspond to each other for a normal location shift
    of half a standard deviation (PSI about 0.25).
    """

    psi_warning: float = 0.1
    psi_critical: float = 0.25
    wasserstein_warning: float = 0.1
    wasserstein_critical: float = 0.5
    js_warning: float = 0.1
    js_critical: float = 0.2
    drift_share: float = 0.3


@dataclass
class FeatureResult:
    """Statistics and verdict of one feature for one window."""

    name: str
    kind: str
    status: str
    n: int
    n_missing: int
    n_reference: int
    test: str | None = None
    statistics: dict[str, Any] = field(default_factory=dict)
    p_value: float | None = None
    p_adjusted: float | None = None
    drifted: bool | None = None
    severity: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        safe: dict[str, Any] = _json_safe(asdict(self))
        return safe


@dataclass
class DriftReport:
    """Per-feature results, the dataset verdict and the parameters used."""

    features: dict[str, FeatureResult]
    dataset: dict[str, Any]
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: NaN and infinities become None."""
        return {
            "features": {k: v.to_dict() for k, v in self.features.items()},
            "dataset": _json_safe(self.dataset),
            "params": _json_safe(self.params),
        }


def compare(
    reference: ReferenceProfile,
    current: Mapping[str, Any],
    *,
    alpha: float = 0.05,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    correction: str = "holm",
    thresholds: Thresholds | None = None,
    workers: int | None = None,
) -> DriftReport:
    """Compare a window of current data with the reference profile.

    ``current`` maps feature names to 1-D arrays (a pandas DataFrame will
    do); reference features absent
    from it get status "missing", extra columns are listed as ``ignored``.
    Features with fewer than ``min_samples`` usable values in the window or in
    the reference get status "insufficient_data" and no verdict; they are also
    left out of the multiple-testing correction.  ``correction`` is "holm",
    "bh" (Benjamini-Hochberg) or "none".  Features are processed on a thread
    pool of ``workers`` threads (numpy releases the GIL while sorting).
    """
    if correction not in ("holm", "bh", "none"):
        raise ValueError("correction must be 'holm', 'bh' or 'none'")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if min_samples < 1:
        raise ValueError("min_samples must be at least 1")
    thresholds = thresholds or Thresholds()
    names = list(reference.features)
    jobs = [(n, reference.features[n], current[n], min_samples) for n in names if n in current]
    computed = {res.name: res for res in _map(_compare_feature, jobs, workers)}
    results: dict[str, FeatureResult] = {}
    for name in names:
        if name in computed:
            results[name] = computed[name]
        else:
            ref = reference.features[name]
            results[name] = FeatureResult(name, ref.kind, MISSING, 0, 0, ref.n, reason="column")
    _apply_verdicts(list(results.values()), alpha, correction, thresholds)
    params = {
        "alpha": alpha,
        "min_samples": min_samples,
        "correction": correction,
        "thresholds": asdict(thresholds),
        "proportion_floor": PROPORTION_FLOOR,
    }
    dataset = _dataset_verdict(results, thresholds)
    dataset["ignored"] = sorted(set(current) - set(names))
    return DriftReport(features=results, dataset=dataset, params=params)


def compare_matrix(
    reference: ReferenceProfile, X: np.ndarray, names: Sequence[str], **kwargs: Any
) -> DriftReport:
    """``compare`` for a 2-D float array (rows x features) with column names.

    Categorical features are expected as numeric codes.  Columns are strided
    views; each is copied once, when it is sorted or counted.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != len(names):
        raise ValueError("X must be 2-D with one column per name")
    return compare(reference, {name: X[:, j] for j, name in enumerate(names)}, **kwargs)


def _map(fn: Callable[..., _R], jobs: Sequence[tuple[Any, ...]], workers: int | None) -> list[_R]:
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    if workers <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: fn(*job), jobs))


def _compare_feature(
    name: str, ref: FeatureReference, values: Any, min_samples: int
) -> FeatureResult:
    """Statistics of one feature; no verdict yet (that needs all p-values)."""
    values = np.asarray(values)
    if isinstance(ref, NumericReference):
        cur = _sorted_finite(values.astype(np.float64, copy=False))
        res = FeatureResult(name, NUMERIC, OK, int(cur.size), values.size - cur.size, ref.n)
        res.test = "ks"
    else:
        levels, counts, n_missing = _count_levels(values)
        res = FeatureResult(name, CATEGORICAL, OK, int(counts.sum()), n_missing, ref.n)
        res.test = "chi2"
    if res.n < min_samples or ref.n < min_samples:
        res.status = INSUFFICIENT
        res.reason = "current" if res.n < min_samples else "reference"
        return res
    if isinstance(ref, NumericReference):
        res.statistics = numeric_statistics(ref, cur)
        res.p_value = res.statistics["ks_pvalue"]
    else:
        res.statistics = categorical_statistics(ref, levels, counts)
        res.p_value = res.statistics["chi2_pvalue"]
    return res


def numeric_statistics(ref: NumericReference, cur: np.ndarray) -> dict[str, Any]:
    """PSI, KS and Wasserstein-1 of a sorted finite current sample vs the reference.

    ``cur`` must be sorted ascending and finite (see ``_sorted_finite``).
    """
    n = cur.size
    q = _bin_counts(cur, ref.edges) / n
    ks_d, w1 = _ks_wasserstein(ref._values, ref._cum, cur)
    ks_p = _ks_pvalue(ks_d, ref.sample, cur)
    std = ref.std
    mean = float(np.mean(cur))
    centred = cur - mean
    return {
        "psi": psi(ref.proportions, q),
        "proportions": _floats(q),
        "ks_statistic": ks_d,
        "ks_pvalue": ks_p,
        "wasserstein": w1,
        "wasserstein_norm": w1 / std if std else None,
        "mean": mean,
        "std": math.sqrt(_dot(centred, centred) / n),
        "reference_mean": ref.mean,
        "reference_std": std,
    }


def psi(p: np.ndarray, q: np.ndarray, floor: float = PROPORTION_FLOOR) -> float:
    """Population stability index ``sum((q - p) * ln(q / p))``.

    ``p`` are reference proportions, ``q`` current proportions of the same
    bins.  Proportions below ``floor`` are raised to it (not renormalised;
    Evidently substitutes the same 1e-4 for empty bins), so an empty bin adds
    a bounded term: a reference bin of 0.1 with no current rows adds about 0.69.
    """
    p = np.maximum(np.asarray(p, dtype=np.float64), floor)
    q = np.maximum(np.asarray(q, dtype=np.float64), floor)
    return float(np.sum((q - p) * np.log(q / p)))


@lru_cache(maxsize=8)
def _ecdf_steps(n: int) -> np.ndarray:
    """(1, 2, ..., n) / n, the current ECDF just after each sorted value."""
    steps = np.arange(1, n + 1, dtype=np.float64) / n
    steps.flags.writeable = False
    return steps


def _ks_wasserstein(u: np.ndarray, cum: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and Wasserstein-1 distance in O(n + m).

    ``u`` are the distinct sorted reference values, ``cum[i]`` the number of
    reference values <= u[i]; ``cur`` is the sorted current sample.  Both
    statistics read the two ECDFs F_r and F_c on the merged support without
    materialising it:

    * KS: D = sup |F_r - F_c|.  F_r - F_c only jumps up at reference values
      and down at current values, so its maximum is reached at some u[i] and
      its minimum just before some u[i].  Same floats as ``ks_2samp``.
    * W1 = integral |F_r - F_c| dx (``scipy.stats._cdf_distance`` with p=1):
      every gap between consecutive distinct support points is owned by the
      point on its left; each current point's gap ends at the next current
      value or the next reference value, whichever comes first, and each
      reference point owns its gap only when no current value equals it.
    """
    n, m = cur.size, float(cum[-1])
    top = max(cur[-1], u[-1])
    left = np.searchsorted(cur, u, side="left")  # current values < u[i]
    # First current value >= u[i]; a second binary search (for "<=") is only
    # needed where it equals u[i], which is rare for continuous features.
    first_ge = np.where(left < n, cur[np.minimum(left, n - 1)], top)
    tied = (left < n) & (first_ge == u)
    right = left.copy()  # current values <= u[i]
    if tied.any():
        right[tied] = np.searchsorted(cur, u[tied], side="right")
    fr = cum / m
    d_plus = np.max(fr - right / n)
    d_minus = np.min((cum - np.diff(cum, prepend=0)) / m - left / n)
    ks = float(max(d_plus, min(max(-d_minus, 0.0), 1.0)))

    # Current points fall into blocks between reference values: block i holds
    # u[i-1] <= x < u[i] and shares F_r and the next reference value, so
    # np.repeat expands them without a binary search per current value.
    sizes = np.diff(left, prepend=0, append=n)
    gap = np.repeat(np.append(u, top), sizes)
    np.minimum(gap[:-1], cur[1:], out=gap[:-1])
    gap -= cur
    diff = np.repeat(np.append(0.0, fr), sizes)
    diff -= _ecdf_steps(n)
    np.abs(diff, out=diff)
    w1 = _dot(diff, gap)
    # A reference point owns the gap up to the next reference value or the
    # next current value; it is empty when a current value is tied to it.
    nxt = np.minimum(np.append(u[1:], top), first_ge)
    w1 += _dot(np.abs(fr - right / n), nxt - u)
    return ks, w1


def _ks_pvalue(d: float, ref: np.ndarray, cur: np.ndarray) -> float:
    """p-value of ``ks_2samp(ref, cur)`` (two-sided, method="auto").

    Large samples use scipy's asymptotic rule ``kstwo.sf(d, round(n*m/(n+m)))``
    with the larger size first, exactly as ``ks_2samp`` does.  When both
    samples have at most ``KS_EXACT_MAX_N`` values scipy uses the exact null
    distribution, which it does not expose publicly; there ``ks_2samp`` itself
    is called on the (small) samples.
    """
    n1, n2 = ref.size, cur.size
    if max(n1, n2) <= KS_EXACT_MAX_N:
        return float(stats.ks_2samp(ref, cur).pvalue)
    big, small = sorted([float(n1), float(n2)], reverse=True)
    en = big * small / (big + small)
    return float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))


def categorical_statistics(
    ref: CategoricalReference, levels: np.ndarray, counts: np.ndarray
) -> dict[str, Any]:
    """Chi-squared goodness of fit, Jensen-Shannon distance and PSI over levels.

    The comparison runs over the union of reference and current levels.  The
    expected frequencies are ``n * p_ref`` with reference proportions floored
    at ``PROPORTION_FLOOR`` and renormalised, so a level never seen in the
    reference has a small but non-zero expectation instead of an infinite
    chi-squared term; such levels are listed in ``unseen_levels``.  The
    statistic matches ``scipy.stats.chisquare(observed, expected)`` and has
    ``k - 1`` degrees of freedom; with a single level there is nothing to test
    and the p-value is 1.  Jensen-Shannon uses the unfloored proportions.
    """
    ref_levels, cur_levels = _common_level_type(ref.levels, levels)
    union = np.union1d(ref_levels, cur_levels)
    ref_counts = np.zeros(union.size)
    np.add.at(ref_counts, np.searchsorted(union, ref_levels), ref.counts)
    observed = np.zeros(union.size)
    np.add.at(observed, np.searchsorted(union, cur_levels), counts)
    n = observed.sum()
    p = ref_counts / ref_counts.sum()
    q = observed / n
    floored = np.maximum(p, PROPORTION_FLOOR)
    expected = n * floored / floored.sum()
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    dof = union.size - 1
    pvalue = float(stats.chi2.sf(chi2, dof)) if dof > 0 else 1.0
    unseen = (ref_counts == 0) & (observed > 0)
    return {
        "chi2": chi2,
        "chi2_pvalue": pvalue,
        "dof": dof,
        "js_distance": js_distance(p, q),
        "psi": psi(p, q),
        "levels": [_level_key(v) for v in union],
        "reference_proportions": _floats(p),
        "proportions": _floats(q),
        "unseen_levels": [_level_key(v) for v in union[unseen]],
        "unseen_share": float(q[unseen].sum()),
    }


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance in bits (base 2), so it lies in [0, 1].

    ``sqrt((KL(p || m) + KL(q || m)) / 2)`` with ``m = (p + q) / 2``; same as
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
    """
    p = np.asarray(p, dtype=np.float64) / np.sum(p)
    q = np.asarray(q, dtype=np.float64) / np.sum(q)
    m = (p + q) / 2.0
    div = (np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m))) / 2.0
    return float(np.sqrt(max(div, 0.0) / np.log(2.0)))


# --------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------


def adjust_pvalues(pvalues: Sequence[float], method: str = "holm") -> np.ndarray:
    """Multiple-testing adjusted p-values.

    holm: step-down Holm-Bonferroni, ``max_{j<=i} min(1, (k - j + 1) p_(j))``
          over the ascending p-values; controls the family-wise error rate.
    bh:   Benjamini-Hochberg, ``min_{j>=i} min(1, k p_(j) / j)``; controls the
          false discovery rate (same as ``scipy.stats.false_discovery_control``).
    none: the p-values unchanged.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    k = p.size
    if k == 0 or method == "none":
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (k - np.arange(k)) * ranked))
    elif method == "bh":
        adj = ranked * k / np.arange(1, k + 1)
        adj = np.minimum(1.0, np.minimum.accumulate(adj[::-1])[::-1])
    else:
        raise ValueError(f"unknown correction {method!r}")
    out = np.empty(k)
    out[order] = adj
    return out


def _apply_verdicts(
    results: list[FeatureResult], alpha: float, correction: str, t: Thresholds
) -> None:
    """Adjusted p-values, ``drifted`` and ``severity`` for the tested features.

    drifted  = p_adjusted < alpha and some effect size >= its warning level.
    severity = "critical" if drifted and some effect size >= its critical
               level, "warning" if drifted otherwise, "none" if not drifted.
    """
    tested = [r for r in results if r.status == OK]
    adjusted = adjust_pvalues(
        [np.nan if r.p_value is None else r.p_value for r in tested], correction
    )
    for res, p_adj in zip(tested, adjusted, strict=True):
        res.p_adjusted = float(p_adj)
        level = _effect_level(res, t)
        res.drifted = bool(p_adj < alpha and level >= 1)
        res.severity = SEVERITIES[level] if res.drifted else "none"


def _effect_level(res: FeatureResult, t: Thresholds) -> int:
    """0 below every warning level, 1 at a warning level, 2 at a critical one."""
    s = res.statistics
    if res.kind == NUMERIC:
        pairs = [(s["psi"], t.psi_warning, t.psi_critical)]
        if s["wasserstein_norm"] is not None:
            pairs.append((s["wasserstein_norm"], t.wasserstein_warning, t.wasserstein_critical))
    else:
        pairs = [
            (s["psi"], t.psi_warning, t.psi_critical),
            (s["js_distance"], t.js_warning, t.js_critical),
        ]
    level = 0
    for value, warn, crit in pairs:
        level = max(level, 2 if value >= crit else 1 if value >= warn else 0)
    return level


def _dataset_verdict(results: Mapping[str, FeatureResult], t: Thresholds) -> dict[str, Any]:
    """Dataset rule: drift when share of drifted tested features >= drift_share
    or the score column is drifted; "insufficient_data" when nothing was tested.
    """
    tested = [r for r in results.values() if r.status == OK]
    drifted = [r.name for r in tested if r.drifted]
    score = results.get(SCORE)
    score_drifted = bool(score is not None and score.drifted)
    out: dict[str, Any] = {
        "status": OK if tested else INSUFFICIENT,
        "n_features": len(results),
        "n_tested": len(tested),
        "n_drifted": len(drifted),
        "drifted_features": drifted,
        "insufficient_features": [r.name for r in results.values() if r.status == INSUFFICIENT],
        "missing_features": [r.name for r in results.values() if r.status == MISSING],
        "share_drifted": len(drifted) / len(tested) if tested else None,
        "score_drifted": score_drifted if score is not None and score.status == OK else None,
        "drift_share_threshold": t.drift_share,
    }
    if not tested:
        out.update(drift=None, severity=None)
        return out
    drift = out["share_drifted"] >= t.drift_share or score_drifted
    worst = max((SEVERITIES.index(r.severity) for r in tested if r.drifted), default=0)
    out.update(drift=bool(drift), severity=SEVERITIES[worst] if drift else "none")
    return out


# --------------------------------------------------------------------------
# Page-Hinkley
# --------------------------------------------------------------------------


@dataclass
class PageHinkley:
    """Page-Hinkley change detector for the mean of the score stream.

    With ``xbar_t`` the running mean since the last reset (including x_t)::

        U_t = alpha * U_{t-1} + (x_t - xbar_t - delta)    mean increase
        L_t = alpha * L_{t-1} + (x_t - xbar_t + delta)    mean decrease

    An increase is signalled when ``U_t - min_{s<=t} U_s > threshold`` (the
    lambda of the literature) and a decrease when ``max_{s<=t} L_s - L_t >
    threshold``, once at least ``min_instances`` values were seen since the
    last reset; after a change everything resets.  ``delta`` is the size of
    mean change tolerated as noise, ``alpha`` (<= 1) a forgetting factor that
    lets old deviations fade.  Page (1954), Hinkley (1971); same recursion as
    river's ``PageHinkley``.  ``update`` returns stream positions (counted
    from the first value ever fed) and gives identical results whether a
    stream arrives at once or in batches with ``state_dict``/``from_state``
    round trips in between.
    """

    delta: float = 0.005
    threshold: float = 50.0
    alpha: float = 1.0 - 1e-4
    min_instances: int = 30
    mode: str = "both"
    n: int = 0
    total: float = 0.0
    sum_up: float = 0.0
    min_up: float = 0.0
    sum_down: float = 0.0
    max_down: float = 0.0
    seen: int = 0

    _CHUNK = 4096  # bounds the work redone after a change inside a chunk

    def __post_init__(self) -> None:
        if self.mode not in ("up", "down", "both"):
            raise ValueError("mode must be 'up', 'down' or 'both'")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")

    def state_dict(self) -> dict[str, Any]:
        """Parameters and state as plain JSON types (floats round-trip exactly)."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PageHinkley:
        return cls(**state)

    def update(self, values: Any) -> list[int]:
        """Feed a batch; return the stream positions where a change was signalled."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if not np.all(np.isfinite(x)):
            raise ValueError("Page-Hinkley needs finite values")
        changes: list[int] = []
        start = 0
        while start < x.size:
            stop = min(start + self._CHUNK, x.size)
            hit = self._scan(x[start:stop])
            if hit is None:
                start = stop
            else:
                changes.append(self.seen - 1)
                start += hit + 1
        return changes

    def _decay(self, increments: np.ndarray, previous: float) -> np.ndarray:
        """S_t = alpha * S_{t-1} + increments_t as a C-level IIR filter.

        Seeding the filter with ``alpha * previous`` performs the same floating
        point operations as an unbroken run, which keeps batches invariant.
        """
        from scipy import signal  # imported here: scipy.signal takes ~0.5 s to import

        a = [1.0, -self.alpha]
        filtered: np.ndarray = signal.lfilter([1.0], a, increments, zi=[self.alpha * previous])[0]
        return filtered

    def _scan(self, x: np.ndarray) -> int | None:
        """Vectorised recursion over ``x``; stops at the first change and resets."""
        count = self.n + np.arange(1, x.size + 1)
        totals = np.add.accumulate(np.concatenate(([self.total], x)))[1:]
        dev = x - totals / count
        up = self._decay(dev - self.delta, self.sum_up)
        down = self._decay(dev + self.delta, self.sum_down)
        lo = np.minimum.accumulate(np.concatenate(([self.min_up], up)))[1:]
        hi = np.maximum.accumulate(np.concatenate(([self.max_down], down)))[1:]
        alarm = np.zeros(x.size, dtype=bool)
        if self.mode in ("up", "both"):
            alarm |= up - lo > self.threshold
        if self.mode in ("down", "both"):
            alarm |= hi - down > self.threshold
        alarm &= count >= self.min_instances
        hits = np.flatnonzero(alarm)
        if hits.size:
            self.seen += int(hits[0]) + 1
            self.n, self.total = 0, 0.0
            self.sum_up = self.min_up = self.sum_down = self.max_down = 0.0
            return int(hits[0])
        self.seen += x.size
        self.n = int(count[-1])
        self.total = float(totals[-1])
        self.sum_up, self.min_up = float(up[-1]), float(lo[-1])
        self.sum_down, self.max_down = float(down[-1]), float(hi[-1])
        return None


# --------------------------------------------------------------------------
# Array utilities
# --------------------------------------------------------------------------


def _sorted_finite(values: np.ndarray) -> np.ndarray:
    """Sorted copy without NaN and +-inf (NaN sorts last, infinities at the ends)."""
    s = np.sort(values)
    lo = int(np.searchsorted(s, -np.inf, side="right"))
    hi = int(np.searchsorted(s, np.inf, side="left"))
    return s[lo:hi] if lo or hi < s.size else s


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Inner product of two 1-D arrays without BLAS.

    ``np.dot`` hands level-1 products to OpenBLAS, whose thread hand-off costs
    milliseconds per call on a small or busy machine, far more than the
    arithmetic; einsum's SIMD loop runs in the calling thread.
    """
    return float(np.einsum("i,i->", a, b))


def _bin_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per right-closed bin ``(edges[k-1], edges[k]]`` of a sorted array."""
    le = np.searchsorted(sorted_values, edges, side="right")
    return np.diff(le, prepend=0, append=sorted_values.size)


def _count_levels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(sorted levels, counts, missing) of a categorical column.

    Numbers (integer codes, possibly stored as floats) give float64 levels and
    NaN/inf count as missing; strings give unicode levels and None/NaN objects
    count as missing.
    """
    values = np.asarray(values).ravel()
    if values.dtype.kind == "O":
        missing = np.fromiter(
            (v is None or (isinstance(v, float) and math.isnan(v)) for v in values),
            dtype=bool,
            count=values.size,
        )
        kept = values[~missing]
        try:
            values = kept.astype(np.float64)
        except (TypeError, ValueError):
            values = kept.astype(str)
        n_missing = int(missing.sum())
    else:
        n_missing = 0
    if values.dtype.kind in "biuf":
        values = values.astype(np.float64, copy=False)
        finite = np.isfinite(values)
        n_missing += int(values.size - np.count_nonzero(finite))
        values = values[finite]
    elif values.dtype.kind != "U":
        values = values.astype(str)
    levels, counts = np.unique(values, return_counts=True)
    return levels, counts.astype(np.int64), n_missing


def _common_level_type(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bring numeric and string levels to strings when the two sides differ."""
    if (a.dtype.kind == "U") == (b.dtype.kind == "U"):
        return a, b
    return (
        np.array([_level_key(v) for v in a], dtype=str),
        np.array([_level_key(v) for v in b], dtype=str),
    )


def _level_key(value: Any) -> str:
    """JSON key of a level: integer-valued floats print as integers ("3")."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _floats(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64)]


def _json_safe(obj: Any) -> Any:
    """Recursively convert numpy scalars and map NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
