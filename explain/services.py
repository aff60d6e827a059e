"""Explanation services: explain one incident on demand, precompute high-risk ones in batches.

Every explanation comes from the exact version that scored the prediction: the
booster is loaded through ``registry.services.version_load_booster`` (SHA-256
verified; a mismatch is audited and raised, never replaced by another model) and
the explainer is cached per artifact hash (``shap_core.get_explainer``). Results
are stored in ``Explanation``, keyed by (version, SHA-256 of the float64 feature
bytes), so the same row scored by the same version is explained once.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from explain import shap_core
from explain.models import Explanation
from monitoring.models import PredictionLog
from registry.models import MLModelVersion
from registry.services import version_load_booster


class ExplainInputError(Exception):
    """A logged prediction cannot be explained by its version (schema mismatch)."""


def feature_hash(raw: bytes) -> str:
    """The cache key of a row: SHA-256 of its little-endian float64 feature bytes."""
    return hashlib.sha256(raw).hexdigest()


def version_explainer(*, version: MLModelVersion, actor=None) -> shap_core.Explainer:
    """The cached explainer of a version, after verifying its artifact.

    The booster cache re-hashes the file whenever its size or mtime changed, so a
    tampered artifact raises ``ArtifactIntegrityError`` (and is audited) even when
    an explainer for its hash is already built.
    """
    booster = version_load_booster(version=version, actor=actor)
    return shap_core.get_explainer(
        version.model_hash, lambda: booster, feature_names=version.feature_names
    )


def _rows_matrix(raws: list[bytes], n_features: int) -> np.ndarray:
    matrix = np.frombuffer(b"".join(raws), dtype="<f8")
    if any(len(raw) != n_features * 8 for raw in raws):
        raise ExplainInputError(
            f"logged feature vectors do not have the version's {n_features} features"
        )
    return matrix.reshape(len(raws), n_features)


def _explanations_build(
    version: MLModelVersion, raws: list[bytes], hashes: list[str], batch
) -> list[Explanation]:
    values = np.ascontiguousarray(batch.values, dtype="<f8")
    return [
        Explanation(
            version=version,
            feature_hash=hashes[i],
            base_value=batch.base_value,
            margin=float(batch.margin[i]),
            probability=float(batch.probability[i]),
            contributions=values[i].tobytes(),
            features=raws[i],
        )
        for i in range(len(raws))
    ]


def explanations_store(*, version: MLModelVersion, raws: list[bytes], actor=None) -> int:
    """Explain the distinct rows of ``raws`` not yet cached for ``version`` in one shap call.

    Returns how many explanations were computed. Concurrent writers are harmless:
    the (version, feature_hash) constraint keeps one row and the rest are ignored.
    Not atomic around the artifact load on purpose: a failed verification writes an
    audit event that the caller's rollback must not undo.
    """
    by_hash = {feature_hash(raw): raw for raw in raws}
    known = set(
        Explanation.objects.filter(version=version, feature_hash__in=list(by_hash)).values_list(
            "feature_hash", flat=True
        )
    )
    missing = [h for h in by_hash if h not in known]
    if not missing:
        return 0
    todo = [by_hash[h] for h in missing]
    explainer = version_explainer(version=version, actor=actor)
    batch = explainer.explain(_rows_matrix(todo, len(version.feature_names)))
    with transaction.atomic():
        Explanation.objects.bulk_create(
            _explanations_build(version, todo, missing, batch), ignore_conflicts=True
        )
    return len(missing)


def explanation_for_prediction(
    *, prediction: PredictionLog, actor=None
) -> tuple[Explanation, bool]:
    """The explanation of one logged prediction and whether it came from the cache.

    The artifact is verified on both paths: an integrity failure must stop the
    answer even when an explanation was stored before the file was altered.
    """
    version = prediction.version
    raw = bytes(prediction.features)
    key = feature_hash(raw)
    explainer = version_explainer(version=version, actor=actor)
    cached = Explanation.objects.filter(version=version, feature_hash=key).first()
    if cached is not None:
        explanation_check(cached)
        return cached, True
    batch = explainer.explain(_rows_matrix([raw], len(version.feature_names)))
    built = _explanations_build(version, [raw], [key], batch)[0]
    # On a conflict another request stored the same deterministic values first.
    Explanation.objects.bulk_create([built], ignore_conflicts=True)
    return built, False


def explanation_check(explanation: Explanation) -> None:
    """Re-check additivity of a stored explanation (raises ``AdditivityError``)."""
    shap_core.check_additivity(
        explanation.base_value,
        explanation.contribution_vector().reshape(1, -1),
        np.array([explanation.margin]),
    )


# --------------------------------------------------------------------------- precompute


@dataclass
class PrecomputeReport:
    scanned: int = 0
    explained: int = 0
    batches: int = 0

    def as_dict(self) -> dict:
        return {"scanned": self.scanned, "explained": self.explained, "batches": self.batches}


def high_risk_predictions(*, model=None) -> QuerySet:
    """Predictions scoring at or above their model's ``explain_threshold``."""
    rows = PredictionLog.objects.filter(score__gte=F("version__model__explain_threshold"))
    return rows.filter(version__model=model) if model is not None else rows


def _chunks(predictions: QuerySet, batch_size: int) -> Iterable[list[tuple[int, int, bytes]]]:
    """(id, version_id, features) in id order, ``batch_size`` rows at a time (keyset paging)."""
    last_id = 0
    while True:
        rows = list(
            predictions.filter(pk__gt=last_id)
            .order_by("pk")
            .values_list("pk", "version_id", "features")[:batch_size]
        )
        if not rows:
            return
        yield rows
        last_id = rows[-1][0]


def explanations_precompute(
    *,
    predictions: QuerySet,
    batch_size: int = 2000,
    progress: Callable[[int], object] | None = None,
) -> PrecomputeReport:
    """Explain every prediction of ``predictions`` that has no cached explanation yet.

    Rows are read ``batch_size`` at a time; each version's rows in a chunk are
    explained by one vectorised shap call. Idempotent: running it again finds
    everything cached and explains nothing. ``progress(n)`` is called with the
    number of rows scanned after each chunk.
    """
    report = PrecomputeReport()
    versions: dict[int, MLModelVersion] = {}
    for chunk in _chunks(predictions, batch_size):
        by_version: dict[int, list[bytes]] = defaultdict(list)
        for _, version_id, raw in chunk:
            by_version[version_id].append(bytes(raw))
        for version_id, raws in by_version.items():
            if version_id not in versions:
                versions[version_id] = MLModelVersion.objects.select_related("model").get(
                    pk=version_id
                )
            created = explanations_store(version=versions[version_id], raws=raws)
            report.explained += created
            report.batches += 1 if created else 0
        report.scanned += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return report


def explanations_precompute_recent(
    *, minutes: int, batch_size: int = 2000, now=None
) -> PrecomputeReport:
    """Precompute for high-risk predictions received in the last ``minutes``.

    A received-time window rather than an id cursor: rows committed late with a
    lower id are still seen, and rows already explained cost one hash each.
    """
    now = now or timezone.now()
    recent = high_risk_predictions().filter(received_at__gte=now - timedelta(minutes=minutes))
    return explanations_precompute(predictions=recent, batch_size=batch_size)
