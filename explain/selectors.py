"""Reads for the explanation pages and API: incidents, their predictions, global importance."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time

import numpy as np
from django.db.models import QuerySet
from django.utils import timezone

from core.errors import DomainError
from explain.models import Explanation
from explain.services import feature_hash
from explain.shap_core import contributions_to_api
from monitoring.models import FeedbackEvent, PredictionLog
from registry.models import MLModelVersion

ACTING_ROLES = (PredictionLog.Role.CHAMPION, PredictionLog.Role.CHALLENGER)


class IncidentNotFound(DomainError, LookupError):
    """No logged prediction matches (404); ``details`` says what was asked and what exists."""

    status = 404


def _acting_first(row: PredictionLog) -> tuple:
    return (row.role not in ACTING_ROLES, -row.created_at.timestamp(), -row.pk)


def incident_predictions(*, incident_id: str) -> list[PredictionLog]:
    """Every prediction logged for an incident, acting ones (champion/challenger) first,
    newest first within each group (sorted here: an incident has a handful of rows)."""
    rows = PredictionLog.objects.filter(incident_id=incident_id).select_related("version__model")
    return sorted(rows, key=_acting_first)


def incident_verdicts(*, incident_id: str) -> list[FeedbackEvent]:
    """Every verdict given on an incident's predictions, oldest first, with who gave it,
    the label it replaced and the note."""
    return list(
        FeedbackEvent.objects.filter(prediction__incident_id=incident_id)
        .select_related("user", "prediction__version__model")
        .order_by("created_at", "id")
    )


def incident_prediction(
    *, incident_id: str, version: str | None = None, model: str | None = None
) -> PredictionLog:
    """The prediction to explain: the acting one by default, or the one of ``version``.

    ``version`` is a semver string ("1.1.0") or a version id; ``model`` a model
    name, needed only when several models scored the same incident.
    """
    all_rows = incident_predictions(incident_id=incident_id)
    if not all_rows:
        raise IncidentNotFound(
            f"no prediction is logged for incident {incident_id!r}", {"incident_id": incident_id}
        )
    rows = all_rows
    if model:
        rows = [r for r in rows if r.version.model.name == model]
    if version:
        rows = [r for r in rows if version in (r.version.version, str(r.version_id))]
    if not rows:
        scored_by = [f"{r.version.model.name} {r.version.version}" for r in all_rows]
        raise IncidentNotFound(
            f"incident {incident_id!r} was not scored by the requested version",
            {"incident_id": incident_id, "version": version or "", "scored_by": scored_by},
        )
    return rows[0]


@dataclass
class IncidentFilters:
    model: str = ""
    version: int | None = None
    score_min: float | None = None
    score_max: float | None = None
    start: date | None = None
    end: date | None = None
    verdict: str = ""  # "threat", "benign", "none" or "" for any
    errors: dict = field(default_factory=dict)


def incident_list(*, filters: IncidentFilters) -> QuerySet:
    """Logged predictions with an incident id, newest first, filtered.

    Shadow rows are left out unless a version is chosen: they are not what the
    analyst was shown, but a shadow version's own rows are reachable by picking it.
    """
    rows = PredictionLog.objects.exclude(incident_id="").select_related("version__model")
    if filters.version is not None:
        rows = rows.filter(version_id=filters.version)
    else:
        rows = rows.filter(role__in=ACTING_ROLES)
    if filters.model:
        rows = rows.filter(version__model__name=filters.model)
    if filters.score_min is not None:
        rows = rows.filter(score__gte=filters.score_min)
    if filters.score_max is not None:
        rows = rows.filter(score__lte=filters.score_max)
    tz = timezone.get_current_timezone()
    if filters.start:
        rows = rows.filter(created_at__gte=datetime.combine(filters.start, time.min, tz))
    if filters.end:
        rows = rows.filter(created_at__lte=datetime.combine(filters.end, time.max, tz))
    if filters.verdict == "threat":
        rows = rows.filter(label=1)
    elif filters.verdict == "benign":
        rows = rows.filter(label=0)
    elif filters.verdict == "none":
        rows = rows.filter(label__isnull=True)
    return rows.order_by("-created_at", "-pk")


def explained_keys(predictions: list[PredictionLog]) -> set[int]:
    """Ids of the given predictions whose explanation is already cached (one query)."""
    hashes = {p.pk: (p.version_id, feature_hash(bytes(p.features))) for p in predictions}
    found = set(
        Explanation.objects.filter(
            version_id__in={v for v, _ in hashes.values()},
            feature_hash__in=[h for _, h in hashes.values()],
        ).values_list("version_id", "feature_hash")
    )
    return {pk for pk, key in hashes.items() if key in found}


@dataclass
class GlobalImportance:
    """Mean |SHAP| per feature over a version's stored explanations, plus strip-plot data."""

    version: MLModelVersion
    count: int
    names: list[str]
    mean_abs: list[float]
    strips: list[dict]


def version_importance(
    *, version: MLModelVersion, limit: int = 5000, strip_features: int = 12, strip_points: int = 400
) -> GlobalImportance:
    """Importance from the ``limit`` newest explanations of ``version``.

    Strip points are an evenly spaced subsample; their colour is the feature value
    as a within-feature rank in [0, 1], as in shap's beeswarm plot.
    """
    names = version.feature_names
    stored = list(
        Explanation.objects.filter(version=version)
        .order_by("-created_at")
        .values_list("contributions", "features")[:limit]
    )
    if not stored:
        return GlobalImportance(version, 0, [], [], [])
    values = np.frombuffer(b"".join(bytes(c) for c, _ in stored), dtype="<f8").reshape(
        -1, len(names)
    )
    features = _feature_matrix([bytes(f) for _, f in stored], len(names))
    mean_abs = np.abs(values).mean(axis=0)
    order = np.lexsort((np.arange(len(names)), -mean_abs))
    pick = np.unique(np.linspace(0, len(stored) - 1, min(strip_points, len(stored))).astype(int))
    strips = [_strip(names[j], values[pick, j], features[pick, j]) for j in order[:strip_features]]
    return GlobalImportance(
        version=version,
        count=len(stored),
        names=[names[j] for j in order],
        mean_abs=[float(mean_abs[j]) for j in order],
        strips=strips,
    )


def _feature_matrix(raws: list[bytes], n_features: int) -> np.ndarray:
    full = [r if len(r) == n_features * 8 else np.full(n_features, np.nan).tobytes() for r in raws]
    return np.frombuffer(b"".join(full), dtype="<f8").reshape(-1, n_features)


def _strip(name: str, shap_values: np.ndarray, feature_values: np.ndarray) -> dict:
    finite = np.isfinite(feature_values)
    rank = np.full(feature_values.shape, 0.5)
    if finite.sum() > 1:
        ranks = feature_values[finite].argsort().argsort()
        rank[finite] = ranks / max(1, finite.sum() - 1)
    return {
        "feature": name,
        "shap": [float(v) for v in shap_values],
        "value": [float(v) if np.isfinite(v) else None for v in feature_values],
        "rank": [float(r) for r in rank],
    }


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def explanation_payload(
    *, prediction: PredictionLog, explanation: Explanation, cached: bool, top_k: int
) -> dict:
    """The API body: the brief's fields plus base value, margin, probability and version."""
    version = prediction.version
    names = version.feature_names
    return {
        "incident_id": prediction.incident_id,
        "prediction_score": prediction.score,
        "explanation": contributions_to_api(names, explanation.contribution_vector(), top_k),
        "base_value": explanation.base_value,
        "margin": explanation.margin,
        "probability": explanation.probability,
        "output": "log-odds",
        "method": "tree_path_dependent",
        "feature_values": {
            name: _finite_or_none(v)
            for name, v in zip(names, prediction.feature_vector().tolist(), strict=True)
        },
        "model_version": {
            "id": version.pk,
            "model": version.model.name,
            "version": version.version,
            "status": version.status,
            "artifact_sha256": version.model_hash,
        },
        "prediction": {
            "request_id": prediction.request_id,
            "role": prediction.role,
            "decision": prediction.decision,
            "decision_threshold": version.decision_threshold,
            "created_at": prediction.created_at.isoformat(),
            "label": prediction.label,
        },
        "cached": cached,
    }
