"""Fairness fixtures: a version trained with the APAC proxy (biased) and one without (fair),
and a helper that logs generated traffic scored by a version into the prediction log."""

from datetime import UTC, datetime

import numpy as np
import pytest

from registry import synthetic

# Big enough that APAC's doubled false-positive rate is significant on the held-out
# quarter of the data, small enough to train in well under a second.
TRAIN_EVENTS, TRAIN_ROUNDS, TRAIN_SEED = 20_000, 40, 3


def _train(proxy: float):
    from registry.training import train

    events = synthetic.generate(
        TRAIN_EVENTS, seed=TRAIN_SEED, scenario=synthetic.Scenario(region_proxy=proxy)
    )
    return train(events, num_boost_round=TRAIN_ROUNDS, seed=TRAIN_SEED)


@pytest.fixture(scope="session")
def biased_training():
    return _train(0.25)


@pytest.fixture(scope="session")
def fair_training():
    return _train(0.0)


@pytest.fixture
def register_trained(ml_engineer, artifact_root):
    """register_trained(result, model=..., version=...) -> a version in staging."""
    from tests import factories

    def make(result, *, model="detector", version="1.0.0", gate=True, to="staging"):
        return factories.version(
            result, user=ml_engineer, model=model, semver=version, gate=gate, to=to
        )

    return make


@pytest.fixture
def promote(ml_engineer, approver):
    """Approve and promote a staging version through the registry services."""
    from registry import services

    def do(version):
        request = services.approval_request_create(version=version, actor=ml_engineer)
        services.approval_decide(request=request, approver=approver, decision="approve")
        version.refresh_from_db()
        return services.version_transition(version=version, to="production", actor=approver)

    return do


def traffic(n: int, *, proxy: float, seed: int = 11, start=None):
    return synthetic.generate(
        n, seed=seed, start=start, scenario=synthetic.Scenario(region_proxy=proxy)
    )


def log_traffic(version, events, *, labelled=None, role="champion", tag="t"):
    """Score `events` with `version` and store them as prediction-log rows.

    `labelled` is a boolean mask of rows that got an analyst verdict (all by default).
    Returns the decisions.
    """
    from tests import factories

    labelled = np.ones(len(events), dtype=bool) if labelled is None else labelled
    stamps = events.timestamp.astype("datetime64[s]").astype(int)
    rows = factories.predictions_log(
        version,
        [
            {
                "request_id": f"{tag}-{version.pk}-{i}",
                "incident_id": f"INC-{tag}-{i}",
                "attributes": {"geo_region": str(events.geo_region[i])},
                "created_at": datetime.fromtimestamp(int(stamps[i]), UTC),
                "label": int(events.y[i]) if labelled[i] else None,
            }
            for i in range(len(events))
        ],
        X=events.X,
        role=role,
        batch_size=2000,
    )
    return np.array([row.decision for row in rows], dtype=bool)


def period_of(events):
    """[first event, last event + 1 s) as aware datetimes."""
    stamps = events.timestamp.astype("datetime64[s]").astype(int)
    return (
        datetime.fromtimestamp(int(stamps.min()), UTC),
        datetime.fromtimestamp(int(stamps.max()) + 1, UTC),
    )
