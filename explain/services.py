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
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.db import OperationalError, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from core.errors import DomainError
from explain import shap_core
from explain.models import Explanation
from monitoring.models import PredictionLog
from registry.artifacts import ArtifactIntegrityError
from registry.models import MLModelVersion
from registry.services import version_load_booster
from registry.training import ArtifactFormatError

logger = logging.getLogger(__name__)


class ExplainInputError(DomainError):
    """A logged prediction cannot be explained by its version (schema mismatch): 409."""

    status = 409


class ArtifactRefused(DomainError):
    """The stored artifact fails the structural checks (``registry.tree_check``), for
    example one registered before they existed: 409, naming the tree and node."""

    status = 409


class ExplanationFailed(DomainError):
    """The explanation does not add up to the model's margin (``shap_core.AdditivityError``,
    which the Django-free core raises): 500, with the residual as ``details["reason"]``."""

    status = 500


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


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _rows_matrix(raws: list[bytes], n_features: int) -> np.ndarray:
    matrix = np.frombuffer(b"".join(raws), dtype="<f8")
    if any(len(raw) != n_features * 8 for raw in raws):
        raise ExplainInputError(
            f"logged feature vectors do not have the version's {n_features} features"
        )
    matrix = matrix.reshape(len(raws), n_features)
    if unexplainable(matrix).any():
        raise ExplainInputError(
            "a logged feature value is not finite in float32, the precision the model "
            "scores in (logged before ingest refused such values)"
        )
    return matrix


def unexplainable(matrix: np.ndarray) -> np.ndarray:
    """Rows the model cannot score: a value that is NaN, infinite, or beyond float32
    range (XGBoost reads features as float32, so 1e300 becomes inf there)."""
    with np.errstate(invalid="ignore"):
        return ~(np.abs(matrix) <= FLOAT32_MAX).all(axis=1)


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
    answer even when an explanation was stored before the file was altered. A refusal
    is a DomainError whose ``details`` name the incident, model and version:
    ``ArtifactIntegrityError`` (409, with both hashes), ``ExplainInputError`` (409) or
    ``ExplanationFailed`` (500, an explanation that does not add up).
    """
    version = prediction.version
    where = {
        "incident_id": prediction.incident_id,
        "model": version.model.name,
        "version": version.version,
    }
    try:
        return _explanation_for_prediction(prediction, actor)
    except ArtifactIntegrityError as exc:
        raise ArtifactIntegrityError(
            f"the artifact of {version} failed verification; no explanation is given",
            expected=exc.expected,
            actual=exc.actual,
            details=where,
        ) from exc
    except ExplainInputError as exc:
        raise ExplainInputError(exc.message, where) from None
    except ArtifactFormatError as exc:
        raise ArtifactRefused(
            f"the artifact of {version} is refused; no explanation is given: {exc.message}",
            {**where, **exc.details},
        ) from None
    except shap_core.AdditivityError as exc:
        raise ExplanationFailed(
            "the explanation does not add up to the model's margin",
            {**where, "reason": str(exc)},
        ) from exc


def _explanation_for_prediction(prediction: PredictionLog, actor) -> tuple[Explanation, bool]:
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
    _cache_store(built)
    return built, False


def _cache_store(built: Explanation) -> None:
    """Store an on-demand explanation. On a conflict another request stored the same
    deterministic values first. On the embedded SQLite a write that holds the database
    past the busy timeout (a long feedback load) makes the insert fail with "database
    is locked": the answer does not need the row (the next request or the precompute
    stores it), so the read is served instead of failing."""
    try:
        with transaction.atomic():
            Explanation.objects.bulk_create([built], ignore_conflicts=True)
    except OperationalError as exc:
        if connection.vendor != "sqlite" or "locked" not in str(exc):
            raise
        logger.warning("explanation of %s not cached: %s", built.feature_hash[:12], exc)


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
    # {"prediction": id, "reason": ...} for each row left out so the rest are stored
    skipped: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "scanned": self.scanned,
            "explained": self.explained,
            "batches": self.batches,
            "skipped": self.skipped,
        }


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
        by_version: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        for pk, version_id, raw in chunk:
            by_version[version_id].append((pk, bytes(raw)))
        for version_id, rows in by_version.items():
            if version_id not in versions:
                versions[version_id] = MLModelVersion.objects.select_related("model").get(
                    pk=version_id
                )
            raws = _explainable_rows(versions[version_id], rows, report.skipped)
            created = explanations_store(version=versions[version_id], raws=raws) if raws else 0
            report.explained += created
            report.batches += 1 if created else 0
        report.scanned += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return report


def _explainable_rows(
    version: MLModelVersion, rows: list[tuple[int, bytes]], skipped: list[dict]
) -> list[bytes]:
    """The feature bytes of the rows the version can explain; the others are added to
    ``skipped`` with the reason, so that one bad row does not lose its batch."""
    width = len(version.feature_names) * 8
    sized = [(pk, raw) for pk, raw in rows if len(raw) == width]
    for pk, raw in rows:
        if len(raw) != width:
            skipped.append({"prediction": pk, "reason": "features do not match the schema"})
    if not sized:
        return []
    matrix = np.frombuffer(b"".join(raw for _, raw in sized), dtype="<f8").reshape(len(sized), -1)
    bad = unexplainable(matrix)
    for (pk, _), refused in zip(sized, bad, strict=True):
        if refused:
            skipped.append({"prediction": pk, "reason": "a feature value is not finite in float32"})
    return [raw for (_, raw), refused in zip(sized, bad, strict=True) if not refused]


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
