"""Exact TreeSHAP explanations for an XGBoost booster, with checked additivity.

Contributions are in log-odds (``model_output="raw"``). With the default
``feature_perturbation="tree_path_dependent"`` (Lundberg et al. 2020, "From local
explanations to global understanding with explainable AI for trees", Algorithm 2)
the base value is the expected margin under the trees' own cover statistics; with
a ``background`` sample the explanation is interventional and the base value is
the mean margin over that sample. In both cases, for every row,

    base_value + sum_j phi_j = margin = booster.predict(DMatrix, output_margin=True)

and ``explain`` raises ``AdditivityError`` when that fails by more than 1e-4, so a
mismatched model or a broken conversion can never produce a plausible-looking
explanation. One shap call explains the whole batch.

Build an ``Explainer`` once per model version (``get_explainer`` caches them by
artifact SHA-256); it is safe to share between threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import shap
import xgboost as xgb

ADDITIVITY_TOLERANCE = 1e-4
TOP_K = 5
# Batches up to this many rows are explained single-threaded (see Explainer).
SMALL_BATCH = 32

_V = TypeVar("_V")


class AdditivityError(RuntimeError):
    """base value + contributions does not reproduce the model's margin."""


def check_additivity(
    base_value: npt.ArrayLike,
    contributions: np.ndarray,
    margin: np.ndarray,
    *,
    atol: float = ADDITIVITY_TOLERANCE,
) -> np.ndarray:
    """Residuals ``base + sum(contributions) - margin`` per row; raises if any exceeds atol.

    NaN residuals count as failures.
    """
    contributions = np.asarray(contributions, dtype=np.float64)
    margin = np.asarray(margin, dtype=np.float64).reshape(-1)
    if contributions.ndim != 2 or contributions.shape[0] != margin.shape[0]:
        raise ValueError("contributions must be (n, p) and margin (n,)")
    residual: np.ndarray = (
        np.asarray(base_value, dtype=np.float64) + contributions.sum(axis=1) - margin
    )
    bad = ~(np.abs(residual) <= atol)
    if bad.any():
        worst = int(np.argmax(np.where(np.isnan(residual), np.inf, np.abs(residual))))
        raise AdditivityError(
            f"{int(bad.sum())} of {margin.size} rows break base + contributions = margin "
            f"(tolerance {atol:g}); worst row {worst}: residual {residual[worst]:.3g}"
        )
    return residual


def contributions_to_api(
    names: Sequence[str], values: np.ndarray, top_k: int = TOP_K
) -> dict[str, Any]:
    """The explanation object of the API for one row.

    ``top_positive``: up to ``top_k`` ``[name, value]`` pairs with value > 0, largest
    first; ``top_negative``: value < 0, most negative first; ``all_features``: every
    feature ordered by |value| descending. Ties keep schema order.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.shape[0] != len(names):
        raise ValueError(f"{values.shape[0]} values for {len(names)} features")
    index = np.arange(values.shape[0])
    by_magnitude = np.lexsort((index, -np.abs(values)))
    positive = [j for j in np.lexsort((index, -values)) if values[j] > 0][:top_k]
    negative = [j for j in np.lexsort((index, values)) if values[j] < 0][:top_k]
    return {
        "top_positive": [[names[j], float(values[j])] for j in positive],
        "top_negative": [[names[j], float(values[j])] for j in negative],
        "all_features": {names[j]: float(values[j]) for j in by_magnitude},
    }


@dataclass(frozen=True)
class ExplanationBatch:
    """SHAP contributions (log-odds) for a batch of rows.

    ``values`` is (n, p); ``margin`` the model's log-odds and ``probability`` its
    sigmoid; ``data`` the explained feature values, for showing beside the bars.
    """

    feature_names: tuple[str, ...]
    values: np.ndarray = field(repr=False)
    base_value: float
    margin: np.ndarray = field(repr=False)
    probability: np.ndarray = field(repr=False)
    data: np.ndarray = field(repr=False)
    method: str

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def to_api(self, row_index: int = 0, top_k: int = TOP_K) -> dict[str, Any]:
        return contributions_to_api(self.feature_names, self.values[row_index], top_k)

    def row(self, row_index: int, top_k: int = TOP_K) -> dict[str, Any]:
        """Everything a per-incident page needs, JSON-ready."""
        return {
            "explanation": self.to_api(row_index, top_k),
            "base_value": self.base_value,
            "margin": float(self.margin[row_index]),
            "probability": float(self.probability[row_index]),
            "feature_values": dict(
                zip(self.feature_names, self.data[row_index].tolist(), strict=True)
            ),
            "method": self.method,
        }

    def global_importance(self) -> dict[str, float]:
        """Mean |contribution| per feature over the batch, largest first."""
        mean_abs = (
            np.abs(self.values).mean(axis=0) if len(self) else np.zeros(len(self.feature_names))
        )
        order = np.lexsort((np.arange(mean_abs.size), -mean_abs))
        return {self.feature_names[j]: float(mean_abs[j]) for j in order}


class Explainer:
    """TreeSHAP for one booster, built once and reused for every batch.

    ``background`` (rows x features) switches to interventional SHAP against that
    whole sample; the cost per explained row grows linearly with its size (100 to
    1,000 rows is typical).
    """

    def __init__(
        self,
        booster: xgb.Booster,
        feature_names: Sequence[str] | None = None,
        *,
        background: np.ndarray | None = None,
    ):
        names = list(feature_names if feature_names is not None else booster.feature_names or [])
        if len(names) != booster.num_features():
            raise ValueError(
                f"{len(names)} feature names for a {booster.num_features()}-feature model"
            )
        self.booster = booster
        self.feature_names = tuple(names)
        # (single-threaded booster copy, its shap explainer, the lock serialising it)
        self._small: tuple[xgb.Booster, Any, threading.Lock] | None
        if background is None:
            self.method = "tree_path_dependent"
            self._shap = shap.TreeExplainer(
                booster, feature_perturbation="tree_path_dependent", model_output="raw"
            )
            # For a few rows, waking XGBoost's OpenMP pool costs more than the trees
            # themselves (several times more on a busy host), so single incidents go
            # through a single-threaded copy of the same trees.
            small = booster.copy()
            small.set_param({"nthread": 1})
            self._small = (
                small,
                shap.TreeExplainer(
                    small, feature_perturbation="tree_path_dependent", model_output="raw"
                ),
                threading.Lock(),
            )
        else:
            self.method = "interventional"
            background = self._as_matrix(background)
            # shap would silently subsample a plain array to 100 rows; a masker sized to
            # the sample keeps the base value equal to the mean margin of all of it.
            masker = shap.maskers.Independent(background, max_samples=background.shape[0])
            self._shap = shap.TreeExplainer(
                booster, data=masker, feature_perturbation="interventional", model_output="raw"
            )
            self._small = None
        # shap mutates expected_value inside shap_values; serialise calls per explainer.
        self._lock = threading.Lock()

    @property
    def base_value(self) -> float:
        return float(np.ravel(self._shap.expected_value)[0])

    def _as_matrix(self, X: npt.ArrayLike) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        X = X.reshape(1, -1) if X.ndim == 1 else X
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"expected rows of {len(self.feature_names)} features, got {X.shape}")
        return X

    def margin(self, X: np.ndarray) -> np.ndarray:
        dmatrix = xgb.DMatrix(self._as_matrix(X), feature_names=list(self.feature_names))
        margin: np.ndarray = self.booster.predict(dmatrix, output_margin=True).astype(np.float64)
        return margin

    def explain(self, X: np.ndarray) -> ExplanationBatch:
        """Contributions for every row of ``X`` (one shap call), additivity checked."""
        X = self._as_matrix(X)
        small = self._small if X.shape[0] <= SMALL_BATCH else None
        booster, explainer, lock = small or (self.booster, self._shap, self._lock)
        dmatrix = xgb.DMatrix(
            X, feature_names=list(self.feature_names), nthread=1 if small else None
        )
        with lock:
            # shap's own check would predict a second time; ours below is stricter.
            if self.method == "tree_path_dependent":
                values = explainer.shap_values(dmatrix, check_additivity=False)
            else:
                values = explainer.shap_values(X, check_additivity=False)
            base_value = float(np.ravel(explainer.expected_value)[0])
        values = np.asarray(values, dtype=np.float64).reshape(X.shape[0], X.shape[1])
        margin = booster.predict(dmatrix, output_margin=True).astype(np.float64)
        check_additivity(base_value, values, margin)
        return ExplanationBatch(
            feature_names=self.feature_names,
            values=values,
            base_value=base_value,
            margin=margin,
            probability=1.0 / (1.0 + np.exp(-margin)),
            data=X,
            method=self.method,
        )


class ExplainerCache(Generic[_V]):
    """A small thread-safe LRU; each key is built at most once at a time."""

    def __init__(self, maxsize: int = 8) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, _V] = OrderedDict()
        self._building: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def _hit(self, key: Hashable) -> bool:
        """Whether ``key`` is cached, then marked most recently used (hold the lock)."""
        if key in self._items:
            self._items.move_to_end(key)
            return True
        return False

    def get(self, key: Hashable, factory: Callable[[], _V]) -> _V:
        with self._lock:
            if self._hit(key):
                return self._items[key]
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:  # other keys keep being served while this one builds
            with self._lock:
                if self._hit(key):
                    return self._items[key]
            try:
                value = factory()
            except BaseException:
                with self._lock:
                    self._building.pop(key, None)
                raise
            with self._lock:
                # Publish before dropping the build lock, so no caller builds it twice.
                self._items[key] = value
                self._items.move_to_end(key)
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
                self._building.pop(key, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


_EXPLAINERS: ExplainerCache[Explainer] = ExplainerCache(maxsize=8)


def get_explainer(
    artifact_sha256: str,
    booster_loader: Callable[[], xgb.Booster],
    *,
    feature_names: Sequence[str] | None = None,
) -> Explainer:
    """The cached path-dependent explainer of one artifact, built on first use.

    ``booster_loader`` is only called on a miss; key by the artifact's SHA-256 so
    an explanation always comes from the exact version that scored the event.
    """
    return _EXPLAINERS.get(
        artifact_sha256, lambda: Explainer(booster_loader(), feature_names=feature_names)
    )
