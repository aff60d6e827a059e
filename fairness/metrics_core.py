"""Fairness metrics for a threat detector, computed from one contingency table.

Django-free on purpose (numpy + scipy only): services load data and store
results; this module only does the arithmetic, so it can be tested against
fairlearn and scipy and benchmarked on its own. Full definitions, thresholds
and the verdict rule are in ``docs/fairness.md``.

Conventions
-----------
* A *decision* of 1 means the event was **flagged** (the adverse outcome for the
  user behind it); a *label* of 1 means it was a real threat.
* Every metric derives from ``cells[group, c]``, the (weighted) event counts with
  ``c = 2 * label + decision``, i.e. ``CELLS = ("tn", "fp", "fn", "tp")``. Rows
  are counted once with ``np.bincount``; nothing loops over rows in Python.
* Undefined values (zero denominator) are ``NaN`` in arrays and ``None`` in
  ``FairnessResult.to_dict()``; nothing ever divides by zero.

Per group (Hardt, Price & Srebro 2016, "Equality of Opportunity in Supervised
Learning"; fairlearn's metric definitions)::

    selection_rate = (fp + tp) / n      flag rate
    tpr = tp / (tp + fn)                threats caught
    fpr = fp / (fp + tn)                benign events flagged (false accusations)
    fnr = fn / (tp + fn)                threats missed
    precision = tp / (tp + fp)

Aggregates over the groups where a metric is defined: ``difference = max - min``,
``ratio = min / max`` (1.0 when ``max == 0``); equalized odds takes the worse of
the TPR and FPR components (fairlearn's ``"between_groups"`` method). The
four-fifths rule (29 C.F.R. 1607.4(D)) is applied to the *adverse* outcome:
``impact_ratio_g = rate_ref / rate_g`` and a group fails below 0.8.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, SupportsFloat

import numpy as np
from scipy import stats
from scipy.stats.contingency import expected_freq

CELLS = ("tn", "fp", "fn", "tp")
GROUP_RATES = ("selection_rate", "tpr", "fpr", "fnr", "precision")
AGGREGATES = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
    "fpr_difference",
    "fpr_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
)
# The adverse rates the four-fifths rule and the significance tests apply to.
ADVERSE_METRICS = ("selection_rate", "fpr")

# 30 is the usual floor for a proportion's normal approximation; below it a
# single flagged event moves a rate by more than 3 points. See docs/fairness.md.
DEFAULT_MIN_GROUP_SIZE = 30
DEFAULT_N_BOOT = 1000
FOUR_FIFTHS = 0.8
MAX_GROUPS = 100_000
ProgressCallback = Callable[[int, int], None]


# --------------------------------------------------------------------------
# Factorising labels without a per-row Python loop
# --------------------------------------------------------------------------

_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)
_BUCKETS = 1 << 16


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(levels, codes)`` with sorted levels and ``levels[codes] == values``.

    Equivalent to ``np.unique(values, return_inverse=True)``; integer and
    fixed-width string inputs take O(n) paths because sorting a million
    strings costs more than everything else in an audit together.
    """
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int8)
    if arr.dtype.kind == "O":
        arr = arr.astype(str)  # None and mixed types become their str()
    fast = None
    if arr.dtype.kind in "iu":
        fast = _factorize_int(arr)
    elif arr.dtype.kind == "U":
        fast = _factorize_text(arr)
    if fast is not None:
        return fast
    levels, codes = np.unique(arr, return_inverse=True)
    return levels, codes.reshape(-1)


def _factorize_int(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    lo, hi = int(arr.min()), int(arr.max())
    span = hi - lo + 1
    if span > 4 * arr.size + _BUCKETS or hi > np.iinfo(np.int64).max:
        return None
    offset = (arr.astype(np.int64) - lo).astype(np.intp)
    present = np.bincount(offset, minlength=span) > 0
    lookup = np.cumsum(present) - 1
    levels = (np.flatnonzero(present) + lo).astype(arr.dtype)
    return levels, lookup[offset]


def _factorize_text(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Hash each string's code points into 64 bits, bucket, then verify exactly.

    FNV-1a over machine words, then murmur3's finaliser so the low bits used for
    bucketing depend on every character. A bucket or hash collision is caught
    by comparing every row with its bucket's representative; on any mismatch
    (or too many distinct values) the caller falls back to ``np.unique``.
    """
    arr = np.ascontiguousarray(arr)
    wide = arr.dtype.itemsize % 8 == 0
    words = (arr.view(np.uint64) if wide else arr.view(np.uint32)).reshape(arr.size, -1)
    h = np.full(arr.size, _FNV_OFFSET)
    for j in range(words.shape[1]):
        h ^= words[:, j]
        h *= _FNV_PRIME
    for mult in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        h ^= h >> np.uint64(33)
        h *= np.uint64(mult)
    bucket = (h & np.uint64(_BUCKETS - 1)).astype(np.intp)
    occupied = np.bincount(bucket, minlength=_BUCKETS) > 0
    if occupied.sum() > _BUCKETS // 16:
        return None
    representative = np.empty(_BUCKETS, dtype=np.intp)
    representative[bucket] = np.arange(arr.size)
    rows = representative[occupied]
    codes = (np.cumsum(occupied) - 1)[bucket]
    if not np.array_equal(words[rows][codes], words):
        return None
    order = np.argsort(arr[rows], kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return arr[rows][order], rank[codes]


def _label(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------
# The contingency table
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ContingencyTable:
    """Event counts per (group, label, decision); every metric derives from it.

    ``counts`` are unweighted events, ``weights`` the weighted counts (equal to
    ``counts`` without sample weights) and ``weights_sq`` the sums of squared
    weights, kept for Kish's effective sample size. Groups are the cartesian
    product of the attributes' levels (C order, levels sorted), so empty
    intersections appear with zero counts instead of disappearing.
    """

    attributes: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]
    keys: tuple[tuple[str, ...], ...]
    counts: np.ndarray
    weights: np.ndarray
    weights_sq: np.ndarray
    weighted: bool

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Display names: the level for one attribute, ``a=x, b=y`` for several."""
        if len(self.attributes) == 1:
            return tuple(key[0] for key in self.keys)
        return tuple(
            ", ".join(f"{a}={v}" for a, v in zip(self.attributes, key, strict=True))
            for key in self.keys
        )

    @cached_property
    def n_events(self) -> np.ndarray:
        events: np.ndarray = self.counts.sum(axis=1)
        return events

    def effective_sizes(self) -> np.ndarray:
        """Kish's effective sample size per group, ``(sum w)^2 / sum w^2``.

        Equals the event count when weights are absent or all equal.
        """
        if not self.weighted:
            return self.n_events.astype(float)
        total = self.weights.sum(axis=1)
        return _safe_div(total * total, self.weights_sq.sum(axis=1), fill=0.0)

    def effective_cells(self) -> np.ndarray:
        """Cell counts rescaled so each group sums to its effective size."""
        if not self.weighted:
            return self.counts.astype(float)
        total = self.weights.sum(axis=1)
        scale = _safe_div(self.effective_sizes(), total, fill=0.0)
        cells: np.ndarray = self.weights * scale[:, None]
        return cells

    def index(self, group: str | Sequence[str] | Mapping[str, object]) -> int:
        """Position of a group given by display name, key tuple or ``{attr: level}``."""
        if isinstance(group, Mapping):
            group = tuple(_label(group[a]) for a in self.attributes)
        elif not isinstance(group, str):
            group = tuple(_label(v) for v in group)
        for i, (name, key) in enumerate(zip(self.names, self.keys, strict=True)):
            if group == name or group == key:
                return i
        raise ValueError(f"unknown group {group!r}; known: {list(self.names)}")


def _as_binary(values: object, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional")
    if arr.dtype.kind == "b":
        return arr.view(np.int8)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{what} must be numeric 0/1, got dtype {arr.dtype}")
    if arr.size and not ((arr == 0) | (arr == 1)).all():
        raise ValueError(f"{what} must contain only 0 and 1")
    return arr.astype(np.int8)


def _decisions(y_pred: object, scores: object, threshold: float | None) -> np.ndarray:
    """Flags from ``y_pred``, or ``scores >= threshold`` (ties are flagged)."""
    if (y_pred is None) == (scores is None):
        raise ValueError("pass exactly one of y_pred or scores")
    if y_pred is not None:
        return _as_binary(y_pred, "y_pred")
    if threshold is None or not np.isfinite(threshold):
        raise ValueError("scores need a finite threshold")
    s = np.asarray(scores, dtype=float)
    if s.ndim != 1 or np.isnan(s).any():
        raise ValueError("scores must be one-dimensional without NaN")
    return (s >= threshold).astype(np.int8)


def _group_codes(
    sensitive: Mapping[str, object], n: int
) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...], np.ndarray]:
    """Per-row index into the cartesian product of every attribute's levels."""
    if not sensitive:
        raise ValueError("sensitive needs at least one attribute")
    attributes: list[str] = []
    levels: list[tuple[str, ...]] = []
    code = np.zeros(n, dtype=np.intp)
    for name, values in sensitive.items():
        arr = np.asarray(values)
        if arr.shape != (n,):
            raise ValueError(f"sensitive[{name!r}] has shape {arr.shape}, expected ({n},)")
        lv, codes = _factorize(arr)
        attributes.append(str(name))
        levels.append(tuple(_label(v) for v in lv.tolist()))
        code = code * len(lv) + codes
    n_groups = int(np.prod([len(lv) for lv in levels]))
    if n_groups > MAX_GROUPS:
        raise ValueError(f"{n_groups} intersectional groups exceed the limit of {MAX_GROUPS}")
    return tuple(attributes), tuple(levels), code


def contingency(
    y_true: object,
    *,
    y_pred: object = None,
    scores: object = None,
    threshold: float | None = None,
    sensitive: Mapping[str, object],
    sample_weight: object = None,
) -> ContingencyTable:
    """Count events once into a ``group x (label, decision)`` table.

    ``sensitive`` maps attribute names to per-row labels; several attributes
    give their intersection. Decisions come from ``y_pred`` (0/1) or from
    ``scores >= threshold``. ``sample_weight`` must be finite and non-negative.
    """
    y = _as_binary(y_true, "y_true")
    if y.size == 0:
        raise ValueError("no events")
    d = _decisions(y_pred, scores, threshold)
    if d.shape != y.shape:
        raise ValueError("y_true and decisions differ in length")
    attributes, levels, group = _group_codes(sensitive, y.size)
    n_groups = int(np.prod([len(lv) for lv in levels]))
    cell = group * 4
    cell += y * 2
    cell += d
    size = 4 * n_groups
    counts = np.bincount(cell, minlength=size).reshape(n_groups, 4)
    if sample_weight is None:
        weights = counts.astype(float)
        weights_sq = weights
    else:
        w = np.asarray(sample_weight, dtype=float)
        if w.shape != y.shape or not np.isfinite(w).all() or (w < 0).any():
            raise ValueError("sample_weight must be finite, non-negative, one per event")
        weights = np.bincount(cell, weights=w, minlength=size).reshape(n_groups, 4)
        weights_sq = np.bincount(cell, weights=w * w, minlength=size).reshape(n_groups, 4)
    keys = tuple(np.ndindex(*[len(lv) for lv in levels]))
    keys = tuple(tuple(levels[a][i] for a, i in enumerate(k)) for k in keys)
    return ContingencyTable(
        attributes, levels, keys, counts, weights, weights_sq, sample_weight is not None
    )


# --------------------------------------------------------------------------
# Rates and aggregates, vectorised over any leading (bootstrap) axes
# --------------------------------------------------------------------------


def _safe_div(num: np.ndarray, den: np.ndarray, *, fill: float = np.nan) -> np.ndarray:
    num, den = np.broadcast_arrays(np.asarray(num, float), np.asarray(den, float))
    out = np.full(num.shape, fill)
    np.divide(num, den, out=out, where=den > 0)
    return out


def rates_from_cells(cells: np.ndarray) -> dict[str, np.ndarray]:
    """Per-group rates from cells of shape ``(..., groups, 4)``; NaN when undefined."""
    tn, fp, fn, tp = np.moveaxis(np.asarray(cells, dtype=float), -1, 0)
    positives, flags = fn + tp, fp + tp
    return {
        "selection_rate": _safe_div(flags, tn + fp + fn + tp),
        "tpr": _safe_div(tp, positives),
        "fpr": _safe_div(fp, tn + fp),
        "fnr": _safe_div(fn, positives),
        "precision": _safe_div(tp, flags),
    }


def _spread(rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(max - min, min / max)`` over the last axis, skipping NaN groups.

    The ratio is 1.0 when every defined group sits at 0 (no disparity to
    measure); both are NaN when no group is defined.
    """
    valid = ~np.isnan(rate)
    defined = valid.any(axis=-1)
    hi = np.where(valid, rate, -np.inf).max(axis=-1)
    lo = np.where(valid, rate, np.inf).min(axis=-1)
    diff = np.where(defined, hi - lo, np.nan)
    ratio = np.where(defined, _safe_div(lo, hi, fill=1.0), np.nan)
    return diff, ratio


def aggregates_from_rates(rates: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Between-group aggregates of ``rates_from_cells`` output (fairlearn semantics).

    * demographic parity: spread of ``selection_rate``;
    * equal opportunity: spread of ``tpr``; FPR parity (predictive equality):
      spread of ``fpr``;
    * equalized odds: ``max`` of the TPR and FPR differences and ``min`` of the
      ratios, ignoring a component that is undefined for every group.
    """
    dp_diff, dp_ratio = _spread(rates["selection_rate"])
    tpr_diff, tpr_ratio = _spread(rates["tpr"])
    fpr_diff, fpr_ratio = _spread(rates["fpr"])
    return {
        "demographic_parity_difference": dp_diff,
        "demographic_parity_ratio": dp_ratio,
        "equal_opportunity_difference": tpr_diff,
        "equal_opportunity_ratio": tpr_ratio,
        "fpr_difference": fpr_diff,
        "fpr_ratio": fpr_ratio,
        "equalized_odds_difference": np.fmax(tpr_diff, fpr_diff),
        "equalized_odds_ratio": np.fmin(tpr_ratio, fpr_ratio),
    }


def impact_ratios(rate: np.ndarray, reference: int) -> np.ndarray:
    """Four-fifths ratio on an adverse rate: ``rate[ref] / rate[g]`` per group.

    Below 1 means the group is flagged more than the reference. ``inf`` when the
    group is never flagged but the reference is, 1.0 when both are at 0, NaN
    when either rate is undefined.
    """
    ref = rate[..., reference : reference + 1]
    ratio = _safe_div(np.broadcast_to(ref, rate.shape), rate, fill=np.inf)
    ratio = np.where((rate == 0) & (ref == 0), 1.0, ratio)
    return np.where(np.isnan(rate) | np.isnan(ref), np.nan, ratio)


@dataclass(frozen=True)
class GroupMetrics:
    """Point estimates per group (arrays aligned with ``table.names``)."""

    n: np.ndarray
    weight: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    flags: np.ndarray
    rates: dict[str, np.ndarray]
    aggregates: dict[str, float]


def group_metrics(table: ContingencyTable) -> GroupMetrics:
    """Weighted rates per group and their between-group aggregates."""
    w = table.weights
    rates = rates_from_cells(w)
    aggregates = {k: float(v) for k, v in aggregates_from_rates(rates).items()}
    return GroupMetrics(
        n=table.n_events,
        weight=w.sum(axis=1),
        positives=w[:, 2] + w[:, 3],
        negatives=w[:, 0] + w[:, 1],
        flags=w[:, 1] + w[:, 3],
        rates=rates,
        aggregates=aggregates,
    )


# --------------------------------------------------------------------------
# Bootstrap over the table
# --------------------------------------------------------------------------


def bootstrap_cells(
    table: ContingencyTable,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    chunk: int = 250,
    progress: ProgressCallback | None = None,
) -> Iterator[np.ndarray]:
    """Yield resampled tables of shape ``(k, groups, 4)``, ``k <= chunk``.

    Stratified multinomial bootstrap: group g keeps its size ``n_g`` and its
    cells are redrawn as ``Multinomial(n_g, cells_g / n_g)``, which is exactly
    the distribution of the table of a row-level bootstrap within groups. With
    sample weights, ``p_g`` is the weighted cell share and ``n_g`` Kish's
    effective size (rounded). Draws are chunked for memory and progress only;
    the random stream is the same for every chunk size.
    """
    rng = np.random.default_rng(seed)
    sizes = np.rint(table.effective_sizes()).astype(np.int64)
    totals = table.weights.sum(axis=1, keepdims=True)
    probs = _safe_div(table.weights, totals, fill=0.0)
    probs[totals[:, 0] <= 0] = (1.0, 0.0, 0.0, 0.0)  # empty group: n = 0 anyway
    probs /= probs.sum(axis=1, keepdims=True)  # guard against rounding drift
    done = 0
    while done < n_boot:
        k = min(chunk, n_boot - done)
        yield rng.multinomial(sizes, probs, size=(k, sizes.size))
        done += k
        if progress is not None:
            progress(done, n_boot)


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """Percentile interval over axis 0, ignoring NaN resamples; shape ``(..., 2)``.

    Linear interpolation between order statistics (numpy's default method),
    written out so ``inf`` samples (a never-flagged group's impact ratio) give
    ``inf`` bounds instead of ``inf - inf`` NaNs. NaN when no resample is defined.
    """
    s = np.sort(samples, axis=0)  # NaN sorts last
    valid = (~np.isnan(samples)).sum(axis=0)
    tail = (1.0 - confidence) / 2.0
    bounds = []
    for q in (tail, 1.0 - tail):
        h = np.maximum(valid - 1, 0) * q
        lo = np.floor(h).astype(np.intp)
        hi = np.minimum(lo + 1, np.maximum(valid - 1, 0))
        a = np.take_along_axis(s, lo[None], axis=0)[0]
        b = np.take_along_axis(s, hi[None], axis=0)[0]
        frac = h - lo
        with np.errstate(invalid="ignore"):
            value = np.where((frac == 0) | (a == b), a, a + (b - a) * frac)
        bounds.append(np.where(valid > 0, value, np.nan))
    return np.stack(bounds, axis=-1)


def bootstrap_intervals(
    table: ContingencyTable,
    references: Mapping[str, int | None],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    confidence: float = 0.95,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> dict[str, np.ndarray]:
    """Percentile intervals for every rate, aggregate and impact ratio.

    Keys: ``rate:<name>`` -> ``(groups, 2)``, ``aggregate:<name>`` -> ``(2,)``,
    ``impact:<metric>`` -> ``(groups, 2)`` (against the fixed reference group).
    """
    parts: dict[str, list[np.ndarray]] = {}
    for cells in bootstrap_cells(table, n_boot=n_boot, seed=seed, progress=progress):
        rates = rates_from_cells(cells)
        values = {f"rate:{k}": v for k, v in rates.items()}
        values.update({f"aggregate:{k}": v for k, v in aggregates_from_rates(rates).items()})
        for metric, ref in references.items():
            if ref is not None:
                values[f"impact:{metric}"] = impact_ratios(rates[metric], ref)
        for key, value in values.items():
            parts.setdefault(key, []).append(value)
    return {k: percentile_interval(np.concatenate(v), confidence) for k, v in parts.items()}


# --------------------------------------------------------------------------
# Significance tests
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProportionTest:
    test: str
    statistic: float
    p_value: float
    table: tuple[tuple[int, int], tuple[int, int]]


def compare_proportions(events_a: int, total_a: int, events_b: int, total_b: int) -> ProportionTest:
    """Two-sided test of ``events_a / total_a`` vs ``events_b / total_b``.

    Fisher's exact test when any expected cell of the 2x2 table is below 5
    (Cochran's rule; this includes tables with an empty row or column), else
    Pearson's chi-squared with Yates' continuity correction (scipy's default
    for 2x2). The statistic is the sample odds ratio for Fisher, chi^2 otherwise.
    """
    table = np.array([[events_a, total_a - events_a], [events_b, total_b - events_b]])
    if (table < 0).any():
        raise ValueError("events cannot exceed totals")
    if (expected_freq(table) < 5).any():
        fisher = stats.fisher_exact(table)
        name, statistic, p_value = "fisher", float(fisher.statistic), float(fisher.pvalue)
    else:
        chi2 = stats.chi2_contingency(table)
        name, statistic, p_value = "chi2", float(chi2.statistic), float(chi2.pvalue)
    (a, b), (c, d) = table.tolist()
    return ProportionTest(name, statistic, p_value, ((a, b), (c, d)))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values (Holm 1979), NaN kept as NaN."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    order = idx[np.argsort(p[idx], kind="stable")]
    m = order.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


# --------------------------------------------------------------------------
# Reference group, comparisons and the verdict
# --------------------------------------------------------------------------


def _denominators(table: ContingencyTable) -> dict[str, np.ndarray]:
    """Effective event counts behind each rate (what the minimum size applies to)."""
    eff = table.effective_cells()
    return {
        "selection_rate": eff.sum(axis=1),
        "tpr": eff[:, 2] + eff[:, 3],
        "fpr": eff[:, 0] + eff[:, 1],
    }


def choose_reference(
    table: ContingencyTable,
    metrics: GroupMetrics,
    how: str | Sequence[str] | Mapping[str, object] = "largest",
    *,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
) -> dict[str, int | None]:
    """Reference group per adverse metric.

    ``"largest"``: the group with the largest (weighted) total; ``"best"``: the
    group with the lowest rate of that metric (ties go to the larger group);
    anything else names one group (see ``ContingencyTable.index``). Automatic
    choices only consider groups whose rate is defined and whose denominator
    reaches ``min_group_size``, falling back to any defined group.
    """
    if how not in ("largest", "best"):
        idx = table.index(how)
        return {m: idx for m in ADVERSE_METRICS}
    denominators = _denominators(table)
    chosen: dict[str, int | None] = {}
    for metric in ADVERSE_METRICS:
        rate = metrics.rates[metric]
        defined = ~np.isnan(rate)
        pool = defined & (denominators[metric] >= min_group_size)
        pool = pool if pool.any() else defined
        if not pool.any():
            chosen[metric] = None
            continue
        candidates = np.flatnonzero(pool)
        # lexsort: last key is primary; -weight breaks ties towards larger groups
        primary = -metrics.weight[candidates] if how == "largest" else rate[candidates]
        order = np.lexsort((candidates, -metrics.weight[candidates], primary))
        chosen[metric] = int(candidates[order[0]])
    return chosen


@dataclass(frozen=True)
class Comparison:
    """Four-fifths rule and significance of every group against the reference."""

    metric: str
    reference: int | None
    ratio: np.ndarray
    status: tuple[str, ...]
    tests: tuple[ProportionTest | None, ...]
    p_adjusted: np.ndarray
    reference_sufficient: bool


def compare_groups(
    table: ContingencyTable,
    metrics: GroupMetrics,
    metric: str,
    reference: int | None,
    *,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    alpha: float = 0.05,
    four_fifths: float = FOUR_FIFTHS,
) -> Comparison:
    """Impact ratio, test and status of each group for ``selection_rate`` or ``fpr``.

    Status: ``reference``, ``empty``, ``insufficient_data`` (denominator below
    ``min_group_size``), ``no_reference``, ``pass`` (ratio >= ``four_fifths``),
    ``fail`` (ratio below it and Holm-adjusted p < ``alpha``) or
    ``inconclusive`` (ratio below it, not significant). Holm's correction runs
    over the groups tested for this metric. Tests use effective counts
    (exact counts without weights), rounded to integers.
    """
    eff = table.effective_cells()
    events = np.rint(eff[:, 1] + eff[:, 3] if metric == "selection_rate" else eff[:, 1])
    totals = np.rint(_denominators(table)[metric])
    sufficient = _denominators(table)[metric] >= min_group_size
    n_groups = len(table.keys)
    rate = metrics.rates[metric]
    # a named reference may be empty or lack this metric's denominator: then None
    r = reference if reference is not None and not np.isnan(rate[reference]) else None
    ratio = impact_ratios(rate, r) if r is not None else np.full(n_groups, np.nan)
    tests: list[ProportionTest | None] = [None] * n_groups
    for g in range(n_groups):
        if r is not None and g != r and sufficient[g]:
            tests[g] = compare_proportions(
                int(events[g]), int(totals[g]), int(events[r]), int(totals[r])
            )
    p_adj = holm([np.nan if t is None else t.p_value for t in tests])
    status = []
    for g in range(n_groups):
        if g == reference:
            status.append("reference")
        elif table.n_events[g] == 0:
            status.append("empty")
        elif not sufficient[g]:
            status.append("insufficient_data")
        elif r is None:
            status.append("no_reference")
        elif ratio[g] >= four_fifths:
            status.append("pass")
        else:
            status.append("fail" if p_adj[g] < alpha else "inconclusive")
    ref_ok = reference is not None and bool(sufficient[reference])
    return Comparison(metric, reference, ratio, tuple(status), tuple(tests), p_adj, ref_ok)


def _reason(
    code: str,
    severity: str,
    message: str,
    group: str | None = None,
    metric: str | None = None,
    **extra: object,
) -> dict[str, Any]:
    return {
        "code": code,
        "severity": severity,
        "group": group,
        "metric": metric,
        "message": message,
        **extra,
    }


def _rule_reasons(table: ContingencyTable, comp: Comparison, gated: bool) -> list[dict[str, Any]]:
    names = table.names
    reasons: list[dict[str, Any]] = []
    ref = None if comp.reference is None else names[comp.reference]
    for g, status in enumerate(comp.status):
        if status not in ("fail", "inconclusive"):
            continue
        test = comp.tests[g]
        assert test is not None  # a failing or inconclusive group was tested
        severity = status if gated else "advisory"
        code = "four_fifths_failed" if status == "fail" else "four_fifths_failed_not_significant"
        message = (
            f"{names[g]}: {comp.metric} impact ratio {comp.ratio[g]:.3f} against {ref} is below "
            f"four-fifths (p={test.p_value:.3g}, Holm-adjusted {comp.p_adjusted[g]:.3g})"
        )
        reasons.append(
            _reason(
                code,
                severity,
                message,
                names[g],
                comp.metric,
                reference=ref,
                ratio=_num(comp.ratio[g]),
                test=test.test,
                p_value=_num(test.p_value),
                p_adjusted=_num(comp.p_adjusted[g]),
            )
        )
    return reasons


def _coverage_reasons(
    table: ContingencyTable, comp: Comparison, max_insufficient_share: float
) -> list[dict[str, Any]]:
    """Why a gated metric cannot be judged: too few usable groups or a weak reference."""
    names, metric = table.names, comp.metric
    reasons: list[dict[str, Any]] = []
    for g, status in enumerate(comp.status):
        if status == "insufficient_data":
            msg = f"{names[g]}: too few events for {metric}; reported, not judged"
            reasons.append(_reason("insufficient_data", "info", msg, names[g], metric))
    nonempty = [s for s in comp.status if s != "empty"]
    usable = [s for s in nonempty if s not in ("insufficient_data", "no_reference")]
    share = 1.0 - len(usable) / len(nonempty) if nonempty else 1.0
    if len(usable) < 2:
        msg = f"fewer than two groups with enough data for {metric}: nothing to compare"
        reasons.append(_reason("no_comparison_possible", "inconclusive", msg, metric=metric))
    elif share > max_insufficient_share:
        msg = f"{share:.0%} of non-empty groups lack data for {metric}"
        reasons.append(
            _reason("too_many_insufficient_groups", "inconclusive", msg, metric=metric, share=share)
        )
    ref = comp.reference
    if ref is not None and not comp.reference_sufficient:
        msg = f"reference group {names[ref]} has too few events for {metric}"
        reasons.append(_reason("reference_insufficient", "inconclusive", msg, names[ref], metric))
    return reasons


def _undefined_reasons(table: ContingencyTable, metrics: GroupMetrics) -> list[dict[str, Any]]:
    """Info reasons for empty groups and rates excluded from aggregates."""
    why = {
        "tpr": "no real threats: TPR/FNR undefined, excluded from equal opportunity and "
        "equalized odds",
        "fpr": "no benign events: FPR undefined, excluded from FPR parity and equalized odds",
        "precision": "nothing flagged: precision undefined",
    }
    reasons: list[dict[str, Any]] = []
    for g, name in enumerate(table.names):
        if table.n_events[g] == 0:
            reasons.append(_reason("empty_group", "info", f"{name}: no events", name))
            continue
        for metric, message in why.items():
            if np.isnan(metrics.rates[metric][g]):
                reasons.append(
                    _reason("metric_undefined", "info", f"{name}: {message}", name, metric)
                )
    return reasons


def verdict_from(
    table: ContingencyTable,
    metrics: GroupMetrics,
    comparisons: Mapping[str, Comparison],
    *,
    gate_metrics: Sequence[str] = ("fpr",),
    max_insufficient_share: float = 0.5,
) -> tuple[str, list[dict[str, Any]]]:
    """``fail`` if a gated metric has a group that fails four-fifths significantly;
    else ``inconclusive`` if one fails without significance or a gated metric
    lacks usable groups; else ``pass``. Non-gated metrics add ``advisory`` reasons.
    """
    reasons: list[dict[str, Any]] = []
    for metric, comp in comparisons.items():
        gated = metric in gate_metrics
        reasons += _rule_reasons(table, comp, gated)
        if gated:
            reasons += _coverage_reasons(table, comp, max_insufficient_share)
    reasons += _undefined_reasons(table, metrics)
    severities = {r["severity"] for r in reasons}
    verdict = next((s for s in ("fail", "inconclusive") if s in severities), "pass")
    order = {"fail": 0, "inconclusive": 1, "advisory": 2, "info": 3}
    reasons.sort(key=lambda r: order[r["severity"]])
    return verdict, reasons


def _num(x: SupportsFloat) -> float | None:
    """JSON-safe float: NaN and infinities become None."""
    value = float(x)
    return value if np.isfinite(value) else None


def _interval(
    intervals: Mapping[str, np.ndarray], key: str, g: int | None = None
) -> list[float | None] | None:
    if key not in intervals:
        return None
    lo, hi = intervals[key] if g is None else intervals[key][g]
    return None if np.isnan(lo) or np.isnan(hi) else [_num(lo), _num(hi)]


@dataclass(frozen=True)
class FairnessResult:
    """Everything an audit computed; ``to_dict()`` is the JSON-safe record."""

    table: ContingencyTable
    metrics: GroupMetrics
    comparisons: dict[str, Comparison]
    intervals: dict[str, np.ndarray]
    verdict: str
    reasons: list[dict[str, Any]]
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        t, m = self.table, self.metrics
        return {
            "verdict": self.verdict,
            "reasons": self.reasons,
            "settings": self.settings,
            "attributes": list(t.attributes),
            "n_events": int(t.counts.sum()),
            "total_weight": float(t.weights.sum()),
            "weighted": t.weighted,
            "reference": {
                metric: None if c.reference is None else t.names[c.reference]
                for metric, c in self.comparisons.items()
            },
            "groups": [self._group_dict(g, sizes) for g, sizes in enumerate(t.effective_sizes())],
            "aggregates": {
                k: {"value": _num(v), "ci": _interval(self.intervals, f"aggregate:{k}")}
                for k, v in m.aggregates.items()
            },
        }

    def _group_dict(self, g: int, effective_size: float) -> dict[str, Any]:
        t, m = self.table, self.metrics
        n = int(t.n_events[g])
        insufficient = effective_size < self.settings["min_group_size"]
        return {
            "name": t.names[g],
            "attributes": dict(zip(t.attributes, t.keys[g], strict=True)),
            "status": "empty" if n == 0 else "insufficient_data" if insufficient else "ok",
            "count": n,
            "weight": float(m.weight[g]),
            "effective_size": float(effective_size),
            "cells": dict(zip(CELLS, t.counts[g].tolist(), strict=True)),
            "weighted_cells": dict(zip(CELLS, t.weights[g].tolist(), strict=True)),
            "metrics": {
                k: {"value": _num(m.rates[k][g]), "ci": _interval(self.intervals, f"rate:{k}", g)}
                for k in GROUP_RATES
            },
            "four_fifths": {k: self._rule_dict(c, g) for k, c in self.comparisons.items()},
        }

    def _rule_dict(self, comp: Comparison, g: int) -> dict[str, Any]:
        test = comp.tests[g]
        return {
            "status": comp.status[g],
            "reference": None if comp.reference is None else self.table.names[comp.reference],
            "ratio": _num(comp.ratio[g]),
            "ci": _interval(self.intervals, f"impact:{comp.metric}", g),
            "test": None if test is None else test.test,
            "statistic": None if test is None else _num(test.statistic),
            "p_value": None if test is None else _num(test.p_value),
            "p_adjusted": _num(comp.p_adjusted[g]),
        }


def audit_table(
    table: ContingencyTable,
    *,
    reference: str | Sequence[str] | Mapping[str, object] = "largest",
    n_boot: int = DEFAULT_N_BOOT,
    confidence: float = 0.95,
    alpha: float = 0.05,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    four_fifths: float = FOUR_FIFTHS,
    gate_metrics: Sequence[str] = ("fpr",),
    max_insufficient_share: float = 0.5,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> FairnessResult:
    """Audit an existing table; ``audit`` documents the parameters."""
    if min_group_size < 1 or n_boot < 0 or not 0 < alpha < 1 or not 0 < confidence < 1:
        raise ValueError("need min_group_size >= 1, n_boot >= 0, 0 < alpha, confidence < 1")
    if not set(gate_metrics) <= set(ADVERSE_METRICS):
        raise ValueError(f"gate_metrics must be a subset of {ADVERSE_METRICS}")
    metrics = group_metrics(table)
    refs = choose_reference(table, metrics, reference, min_group_size=min_group_size)
    comparisons = {
        metric: compare_groups(
            table,
            metrics,
            metric,
            refs[metric],
            min_group_size=min_group_size,
            alpha=alpha,
            four_fifths=four_fifths,
        )
        for metric in ADVERSE_METRICS
    }
    intervals: dict[str, np.ndarray] = {}
    if n_boot:
        intervals = bootstrap_intervals(
            table, refs, n_boot=n_boot, confidence=confidence, seed=seed, progress=progress
        )
    verdict, reasons = verdict_from(
        table,
        metrics,
        comparisons,
        gate_metrics=gate_metrics,
        max_insufficient_share=max_insufficient_share,
    )
    settings = {
        "reference": (
            reference if isinstance(reference, str) else list(table.keys[table.index(reference)])
        ),
        "n_boot": n_boot,
        "confidence": confidence,
        "alpha": alpha,
        "min_group_size": min_group_size,
        "four_fifths": four_fifths,
        "gate_metrics": list(gate_metrics),
        "max_insufficient_share": max_insufficient_share,
        "seed": seed,
        "bootstrap": "stratified multinomial over group cells, percentile",
        "correction": "holm",
        "threshold": None,
    }
    return FairnessResult(table, metrics, comparisons, intervals, verdict, reasons, settings)


def audit(
    y_true: object,
    *,
    y_pred: object = None,
    scores: object = None,
    threshold: float | None = None,
    sensitive: Mapping[str, object],
    sample_weight: object = None,
    reference: str | Sequence[str] | Mapping[str, object] = "largest",
    n_boot: int = DEFAULT_N_BOOT,
    confidence: float = 0.95,
    alpha: float = 0.05,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    four_fifths: float = FOUR_FIFTHS,
    gate_metrics: Sequence[str] = ("fpr",),
    max_insufficient_share: float = 0.5,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> FairnessResult:
    """Full fairness audit of a detector's decisions.

    Counts the table once (``contingency``), computes per-group rates and
    aggregates (``group_metrics``), picks the reference group
    (``choose_reference``: ``"largest"``, ``"best"`` or a group), applies the
    four-fifths rule on the flag rate and on the FPR with Fisher/chi-squared
    tests and Holm's correction (``compare_groups``), bootstraps ``n_boot``
    percentile intervals at ``confidence`` for every number (``bootstrap_intervals``;
    ``progress(done, total)`` is called per chunk) and derives the verdict
    (``verdict_from``; gated on ``gate_metrics``, FPR by default).
    """
    table = contingency(
        y_true,
        y_pred=y_pred,
        scores=scores,
        threshold=threshold,
        sensitive=sensitive,
        sample_weight=sample_weight,
    )
    result = audit_table(
        table,
        reference=reference,
        n_boot=n_boot,
        confidence=confidence,
        alpha=alpha,
        min_group_size=min_group_size,
        four_fifths=four_fifths,
        gate_metrics=gate_metrics,
        max_insufficient_share=max_insufficient_share,
        seed=seed,
        progress=progress,
    )
    result.settings["threshold"] = None if scores is None or threshold is None else float(threshold)
    return result
