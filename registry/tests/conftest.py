import io

import numpy as np
import pytest

from govsite import synthetic
from registry.registration import evaluation_npz, register_training_result
from registry.training import train


@pytest.fixture(scope="session")
def trained():
    """A small real XGBoost model trained on generated events (shared by the session)."""
    events = synthetic.generate(6000, seed=7)
    return train(events, num_boost_round=25, seed=7)


@pytest.fixture(scope="session")
def registration_files(trained):
    metadata = trained.registration_metadata()
    metadata.pop("validation_metrics")
    metadata.update(intended_use="triage SOC events", limitations="synthetic data only")
    return trained.artifact_bytes("json"), metadata, evaluation_npz(trained)


@pytest.fixture
def artifact_root(settings, tmp_path):
    from registry.artifacts import booster_cache

    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    booster_cache.clear()
    return settings.ARTIFACT_ROOT


@pytest.fixture
def register(trained, ml_engineer, artifact_root):
    def make(version="1.0.0", model="threat", user=None, gate=False):
        obj = register_training_result(
            result=trained,
            model_name=model,
            version=version,
            registered_by=user or ml_engineer,
        )
        if not gate:
            obj.model.fairness_gate = False
            obj.model.save(update_fields=["fairness_gate"])
        return obj

    return make


@pytest.fixture
def staged(register, ml_engineer):
    """register + move to staging."""
    from registry import services

    def make(version="1.0.0", **kw):
        obj = register(version, **kw)
        for to in ("testing", "staging"):
            obj = services.version_transition(version=obj, to=to, actor=ml_engineer)
        return obj

    return make


@pytest.fixture
def approved(staged, ml_engineer, approver):
    from registry import services

    def make(version="1.0.0", **kw):
        obj = staged(version, **kw)
        request = services.approval_request_create(version=obj, actor=ml_engineer)
        services.approval_decide(request=request, approver=approver, decision="approve")
        obj.refresh_from_db()
        return obj

    return make


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
