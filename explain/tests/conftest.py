"""Explanation fixtures: a second real model and a factory for logged predictions."""

from datetime import timedelta

import numpy as np
import pytest


@pytest.fixture(scope="session")
def trained_other():
    """Another small real model over the same schema (a different artifact hash)."""
    from registry import synthetic
    from registry.training import train

    return train(synthetic.generate(4000, seed=11), num_boost_round=15, seed=11)


@pytest.fixture
def register_other(trained_other, ml_engineer, artifact_root):
    from registry.registration import register_training_result

    def make(version="1.1.0", model="threat"):
        obj = register_training_result(
            result=trained_other, model_name=model, version=version, registered_by=ml_engineer
        )
        obj.model.fairness_gate = False
        obj.model.save(update_fields=["fairness_gate"])
        return obj

    return make


def booster_of(version):
    from registry.services import version_load_booster

    return version_load_booster(version=version)


def scores_of(version, X):
    import xgboost as xgb

    dmatrix = xgb.DMatrix(np.asarray(X, dtype=np.float64), feature_names=version.feature_names)
    return booster_of(version).predict(dmatrix).astype(np.float64)


@pytest.fixture
def log_predictions():
    """log_predictions(version, X, ids=..., role=...) -> PredictionLog rows scored by version."""
    from django.utils import timezone

    from monitoring.models import PredictionLog

    def make(version, X, *, ids=None, role="champion", start=None, label=None):
        X = np.atleast_2d(np.asarray(X, dtype="<f8"))
        ids = ids if ids is not None else [f"INC-{i}" for i in range(len(X))]
        scores = scores_of(version, X)
        start = start or timezone.now() - timedelta(hours=1)
        rows = [
            PredictionLog(
                version=version,
                request_id=f"req-{version.pk}-{role}-{incident}",
                incident_id=incident,
                entity=f"user-{i % 7}",
                features=np.ascontiguousarray(X[i], dtype="<f8").tobytes(),
                score=float(scores[i]),
                decision=bool(scores[i] >= version.decision_threshold),
                role=role,
                attributes={"geo_region": "EU"},
                created_at=start + timedelta(seconds=i),
                label=label,
            )
            for i, incident in enumerate(ids)
        ]
        PredictionLog.objects.bulk_create(rows)
        return list(
            PredictionLog.objects.filter(request_id__in=[r.request_id for r in rows]).order_by("pk")
        )

    return make
