"""Monitoring's part of the registry's governance, filled into the registry's extension
slots (registry.extensions) when the app is ready: the reference distribution stored
with a version, the drift section of the approval evidence, and the entities a traffic
change would move."""

from collections.abc import Iterator
from datetime import datetime

import numpy as np

from monitoring.drift_core import SCORE, ReferenceProfile, build_reference
from monitoring.models import PredictionLog
from monitoring.selectors import version_drift_status
from registry.models import MLModel, MLModelVersion


def reference_from_evaluation(
    schema: list[dict], arrays: dict, scores: np.ndarray
) -> ReferenceProfile:
    """Reference summary of every feature and of the score, from the evaluation set."""
    columns = {f["name"]: arrays["X"][:, i].astype(np.float64) for i, f in enumerate(schema)}
    columns[SCORE] = scores.astype(np.float64)
    kinds = {f["name"]: f["type"] for f in schema}
    kinds[SCORE] = "numeric"
    return build_reference(columns, kinds)


def entities_seen_since(model: MLModel, since: datetime) -> Iterator[str]:
    entities = (
        PredictionLog.objects.filter(version__model=model, created_at__gte=since)
        .exclude(entity="")
        .values_list("entity", flat=True)
        .distinct()
    )
    return entities.iterator(chunk_size=5000)


def drift_evidence(version: MLModelVersion) -> dict | None:
    return version_drift_status(version=version)
