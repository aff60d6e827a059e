"""Train the reference XGBoost threat classifier and package what the registry needs.

``train`` fits a ``binary:logistic`` booster (hist trees) on a stratified random
training split and evaluates it on the held-out rest: accuracy, precision,
recall and F1 at a decision threshold chosen to maximise F1 on that split, ROC
AUC (Mann-Whitney, ties counted as one half) and log loss. Because the threshold
is tuned on the same rows that report the metrics, those metrics are slightly
optimistic; the AUC and log loss do not depend on the threshold. An event is
flagged when ``score >= threshold``.

``dataset_sha256`` identifies the training data: SHA-256 over a header
``b"govsite-dataset-v1\\n"`` + the JSON ``{"features": [...], "shape": [n, p]}``
(sorted keys, compact) + ``X`` as C-ordered little-endian float64 bytes + ``y``
as uint8 bytes. It covers the whole dataset handed to ``train`` (before the
split), so the same data and split seed reproduce the same version.

Artifacts are XGBoost's own JSON or UBJSON, never pickle. ``load_booster``
refuses anything else before XGBoost's parser sees it: XGBoost's UBJSON reader
can hang or crash on a truncated buffer, and prediction crashes on a tree whose
children point out of range, so both formats are parsed and every tree is checked
in Python first (``registry.tree_check``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xgboost as xgb

from core.errors import DomainError
from registry.tree_check import ArtifactStructureError, check_artifact

DEFAULT_NUM_BOOST_ROUND = 300
DATASET_HASH_HEADER = b"govsite-dataset-v1\n"


def default_params() -> dict:
    """Booster parameters used unless the caller overrides them.

    Two threads by default: training shares a small host with the web tier and
    the workers; pass ``nthread`` to use more.
    """
    return {
        "objective": "binary:logistic",
        # The last metric drives early stopping: log loss, a proper scoring rule.
        "eval_metric": ["auc", "logloss"],
        "tree_method": "hist",
        "max_depth": 6,
        "eta": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 1.0,
        "lambda": 1.0,
        "max_bin": 256,
        "nthread": max(1, min(os.cpu_count() or 1, 2)),
    }


class ArtifactFormatError(DomainError, ValueError):
    """The bytes are not an XGBoost JSON or UBJSON model (400, on the artifact field)."""

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message, details or {"field": "artifact"})


# --------------------------------------------------------------------------- metrics


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic with average ranks for ties."""
    y_true = np.asarray(y_true).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # 1-based rank of the last member of each tie group
    avg_rank = upper - (counts - 1) / 2.0
    rank_sum = avg_rank[inverse][y_true].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The score threshold (flag when score >= t) with the highest F1, and that F1.

    Every distinct score is a candidate; on ties in F1 the highest threshold wins
    (fewer alerts for the same F1).
    """
    y_true = np.asarray(y_true).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives = int(y_true.sum())
    if positives == 0 or scores.size == 0:
        return 0.5, 0.0
    order = np.argsort(-scores, kind="stable")
    s, hits = scores[order], y_true[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    last_of_group = np.r_[s[1:] != s[:-1], True]  # cut only between distinct scores
    tp, fp, cut = tp[last_of_group], fp[last_of_group], s[last_of_group]
    f1 = 2.0 * tp / (tp + fp + positives)
    best = int(np.argmax(f1))
    return float(cut[best]), float(f1[best])


def binary_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict:
    """Confusion-matrix metrics at ``threshold`` plus AUC and log loss.

    Precision is 0 when nothing is flagged and recall 0 when there are no
    positives (scikit-learn's ``zero_division=0``).
    """
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(scores, dtype=np.float64)
    flagged = p >= threshold
    tp = int(np.sum(flagged & y))
    fp = int(np.sum(flagged & ~y))
    fn = int(np.sum(~flagged & y))
    tn = int(y.size - tp - fp - fn)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    log_loss = -np.mean(np.where(y, np.log(clipped), np.log1p(-clipped))) if y.size else np.nan
    return {
        "accuracy": (tp + tn) / y.size if y.size else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": roc_auc(y, p),
        "log_loss": float(log_loss),
        "threshold": float(threshold),
        "samples": int(y.size),
        "positives": int(y.sum()),
        "true_positives": tp,
        "false_positives": fp,
        "true_negatives": tn,
        "false_negatives": fn,
    }


def dataset_sha256(X: np.ndarray, y: np.ndarray, feature_names) -> str:
    """SHA-256 of the training data, as described in the module docstring."""
    X = np.ascontiguousarray(X, dtype="<f8")
    y = np.ascontiguousarray(y, dtype=np.uint8)
    header = {"features": list(feature_names), "shape": list(X.shape)}
    digest = hashlib.sha256(DATASET_HASH_HEADER)
    digest.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    digest.update(X.data.cast("B"))
    digest.update(y.data.cast("B"))
    return digest.hexdigest()


# --------------------------------------------------------------------------- training


@dataclass
class TrainingResult:
    """A trained booster with the evidence the registry stores beside it.

    ``X_valid``, ``y_valid``, ``valid_scores`` and ``valid_geo_region`` (None when
    the input had no region) are the held-out rows: reference distributions and
    the registration fairness audit are built from them.
    """

    booster: xgb.Booster
    feature_names: list[str]
    feature_schema: list[dict]
    hyperparameters: dict
    metrics: dict
    threshold: float
    training_samples: int
    validation_samples: int
    training_duration_seconds: float
    dataset_hash: str
    X_valid: np.ndarray = field(repr=False)
    y_valid: np.ndarray = field(repr=False)
    valid_scores: np.ndarray = field(repr=False)
    valid_geo_region: np.ndarray | None = field(default=None, repr=False)
    evals_log: dict = field(default_factory=dict, repr=False)

    def artifact_bytes(self, fmt: str = "json") -> bytes:
        """The model in XGBoost's own format: ``"json"`` or ``"ubj"`` (UBJSON)."""
        if fmt not in ("json", "ubj"):
            raise ValueError("artifact format must be 'json' or 'ubj'")
        return bytes(self.booster.save_raw(raw_format=fmt))

    def save_artifact(self, path) -> str:
        """Write the model, format chosen by suffix (.json or .ubj); returns its SHA-256."""
        path = Path(path)
        suffix = path.suffix.lower().lstrip(".")
        if suffix not in ("json", "ubj"):
            raise ValueError("artifact path must end in .json or .ubj")
        raw = self.artifact_bytes(suffix)
        path.write_bytes(raw)
        return hashlib.sha256(raw).hexdigest()

    def registration_metadata(self) -> dict:
        """JSON-ready fields for registering this version."""
        return {
            "training_dataset_hash": self.dataset_hash,
            "training_samples": self.training_samples,
            "training_duration_seconds": self.training_duration_seconds,
            "hyperparameters": self.hyperparameters,
            "accuracy": self.metrics["accuracy"],
            "precision": self.metrics["precision"],
            "recall": self.metrics["recall"],
            "f1_score": self.metrics["f1"],
            "auc": self.metrics["auc"],
            "decision_threshold": self.threshold,
            "feature_schema": self.feature_schema,
            "validation_metrics": self.metrics,
        }


class _ProgressCallback(xgb.callback.TrainingCallback):
    def __init__(self, report: Callable[[int, int], object], total: int):
        self.report = report
        self.total = total

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        self.report(epoch + 1, self.total)
        return False  # never asks training to stop


def _unpack(data, feature_names):
    """(X, y, names, schema, geo_region) from an Events-like object or a tuple."""
    if hasattr(data, "X") and hasattr(data, "y"):
        X, y = data.X, data.y
        names = feature_names or list(getattr(data, "feature_names", []) or [])
        schema = getattr(data, "schema", None)
        groups = getattr(data, "geo_region", None)
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3):
        X, y = data[0], data[1]
        groups = data[2] if len(data) == 3 else None
        names, schema = feature_names, None
    else:
        raise TypeError("train() takes an Events-like object or a tuple (X, y[, geo_region])")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be 2-D and y 1-D of the same length, got {X.shape}, {y.shape}")
    if not np.isin(y, (0, 1)).all() or np.unique(y).size != 2:
        raise ValueError("y must be 0/1 with both classes present")
    if np.isinf(X).any():
        raise ValueError("X contains infinite values (NaN is allowed and means missing)")
    names = list(names) if names else [f"f{i}" for i in range(X.shape[1])]
    if len(names) != X.shape[1]:
        raise ValueError(f"{len(names)} feature names for {X.shape[1]} columns")
    if schema is None:
        schema = [{"name": n, "type": "numeric", "description": ""} for n in names]
    groups = None if groups is None else np.asarray(groups)
    return X, y.astype(np.int8), names, [dict(s) for s in schema], groups


def stratified_split(y: np.ndarray, valid_fraction: float, seed: int):
    """Boolean mask of validation rows: ``valid_fraction`` of each class, at random."""
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError("valid_fraction must be within (0, 1)")
    rng = np.random.default_rng(seed)
    valid = np.zeros(y.shape[0], dtype=bool)
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        if rows.size < 2:
            raise ValueError("each class needs at least 2 rows to be split")
        take = max(1, int(round(valid_fraction * rows.size)))
        valid[rng.permutation(rows)[:take]] = True
    return valid


def _fit(params, dtrain, dvalid, num_boost_round, early_stopping_rounds, progress):
    callbacks = [_ProgressCallback(progress, num_boost_round)] if progress else []
    evals_log: dict = {}
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=num_boost_round,
        evals=[(dtrain, "train"), (dvalid, "valid")],
        evals_result=evals_log,
        early_stopping_rounds=early_stopping_rounds,
        callbacks=callbacks,
        verbose_eval=False,
    )
    if early_stopping_rounds is not None:
        # Keep exactly the trees that are served and explained, nothing beyond.
        booster = booster[: booster.best_iteration + 1]
    return booster, evals_log


def train(
    data,
    *,
    feature_names=None,
    params: dict | None = None,
    num_boost_round: int = DEFAULT_NUM_BOOST_ROUND,
    valid_fraction: float = 0.25,
    seed: int = 0,
    early_stopping_rounds: int | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> TrainingResult:
    """Fit a booster on ``data`` and evaluate it on a held-out split.

    ``data`` is an object with ``X``, ``y`` (and optionally ``feature_names``,
    ``schema``, ``geo_region``, like ``registry.synthetic.Events``) or a tuple
    ``(X, y)`` / ``(X, y, geo_region)``. ``params`` override ``default_params()``.
    ``progress(iteration, total)`` is called after every boosting round. With
    ``early_stopping_rounds`` the booster is cut at its best iteration on the
    validation log loss (which makes the validation metrics a little optimistic).
    """
    X, y, names, schema, groups = _unpack(data, feature_names)
    valid = stratified_split(y, valid_fraction, seed)
    booster_params = {**default_params(), **(params or {}), "seed": seed}
    dtrain = xgb.DMatrix(X[~valid], label=y[~valid], feature_names=names)
    dvalid = xgb.DMatrix(X[valid], label=y[valid], feature_names=names)
    started = time.perf_counter()
    booster, evals_log = _fit(
        booster_params, dtrain, dvalid, num_boost_round, early_stopping_rounds, progress
    )
    duration = time.perf_counter() - started

    scores = booster.predict(dvalid).astype(np.float64)
    threshold, _ = best_f1_threshold(y[valid], scores)
    dataset_hash = dataset_sha256(X, y, names)
    booster.set_attr(decision_threshold=repr(threshold), training_dataset_sha256=dataset_hash)
    hyperparameters = {
        **booster_params,
        "num_boost_round": num_boost_round,
        "trees": booster.num_boosted_rounds(),
        "valid_fraction": valid_fraction,
        "early_stopping_rounds": early_stopping_rounds,
        "xgboost_version": xgb.__version__,
    }
    return TrainingResult(
        booster=booster,
        feature_names=names,
        feature_schema=schema,
        hyperparameters=hyperparameters,
        metrics=binary_metrics(y[valid], scores, threshold),
        threshold=threshold,
        training_samples=int((~valid).sum()),
        validation_samples=int(valid.sum()),
        training_duration_seconds=duration,
        dataset_hash=dataset_hash,
        X_valid=X[valid],
        y_valid=y[valid],
        valid_scores=scores,
        valid_geo_region=None if groups is None else groups[valid],
        evals_log=evals_log,
    )


# --------------------------------------------------------------------------- artifacts

# UBJSON object keys start with one of these integer length markers.
_UBJ_INTS = {ord(c) for c in "iUIlL"}


def artifact_format(raw: bytes | bytearray) -> str:
    """``"json"`` or ``"ubj"`` from the first bytes; raises ArtifactFormatError otherwise."""
    if len(raw) < 2:
        raise ArtifactFormatError("artifact is empty or truncated")
    if raw[:1] == b"\x80":
        raise ArtifactFormatError("artifact looks like a pickle; only XGBoost JSON/UBJSON load")
    if raw[:1] == b"{" and raw[1] in _UBJ_INTS:
        return "ubj"  # UBJSON object keys start with an integer length marker
    if raw[:1] == b"{" and raw[1:2] in (b'"', b"}", b" ", b"\n", b"\r", b"\t"):
        return "json"
    raise ArtifactFormatError("artifact is neither XGBoost JSON nor UBJSON")


def load_booster(raw: bytes | bytearray | memoryview, *, feature_names=None) -> xgb.Booster:
    """Load an XGBoost JSON/UBJSON model from bytes, refusing anything else.

    Checks the format and every tree's structure in Python first
    (``registry.tree_check``: XGBoost crashes on a truncated buffer or on child
    indices out of range or in a cycle), then loads via
    ``Booster.load_model(bytearray)``. With ``feature_names`` the model's names
    must match them in order. The registry checks the SHA-256 before calling this.
    """
    if isinstance(raw, memoryview):
        raw = raw.tobytes()
    if not isinstance(raw, (bytes, bytearray)):
        raise TypeError("load_booster() takes bytes")
    try:
        check_artifact(raw, artifact_format(raw))
    except ArtifactStructureError as exc:
        raise ArtifactFormatError(str(exc), exc.details) from None
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgb.core.XGBoostError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else "unknown error"
        raise ArtifactFormatError(f"XGBoost rejected the artifact: {first_line}") from exc
    if feature_names is not None and list(booster.feature_names or []) != list(feature_names):
        raise ArtifactFormatError("artifact's feature names differ from the registered schema")
    return booster
