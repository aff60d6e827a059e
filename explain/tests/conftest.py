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
    from tests import factories

    def make(version="1.1.0", model="threat"):
        return factories.version(
            trained_other, user=ml_engineer, model=model, semver=version, gate=False
        )

    return make


def booster_of(version):
    from registry.services import version_load_booster

    return version_load_booster(version=version)


@pytest.fixture
def log_predictions():
    """log_predictions(version, X, ids=..., role=...) -> PredictionLog rows scored by version."""
    from django.utils import timezone

    from monitoring.models import PredictionLog
    from tests import factories

    def make(version, X, *, ids=None, role="champion", start=None, label=None):
        X = np.atleast_2d(np.asarray(X, dtype="<f8"))
        ids = ids if ids is not None else [f"INC-{i}" for i in range(len(X))]
        start = start or timezone.now() - timedelta(hours=1)
        rows = factories.predictions_log(
            version,
            [
                {
                    "request_id": f"req-{version.pk}-{role}-{incident}",
                    "incident_id": incident,
                    "entity": f"user-{i % 7}",
                    "created_at": start + timedelta(seconds=i),
                }
                for i, incident in enumerate(ids)
            ],
            X=X,
            role=role,
            attributes={"geo_region": "EU"},
            label=label,
        )
        return list(
            PredictionLog.objects.filter(request_id__in=[r.request_id for r in rows]).order_by("pk")
        )

    return make
