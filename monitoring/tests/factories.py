"""Logged traffic for monitoring tests: generated SOC events scored by a registered version."""

import functools
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitoring.models import PredictionLog
from registry import synthetic
from tests import factories

# Windows of the tests: hourly, starting on a fixed Monday.
T0 = datetime(2026, 3, 2, tzinfo=UTC)
DRIFTED = ("bytes_out", "geo_velocity")


@pytest.fixture
def hourly_windows(settings):
    """Compare each window on its own (the default compares the trailing day), so that
    tests can put clean and drifted traffic in neighbouring windows."""
    settings.DRIFT_SPAN_MINUTES = 60


def drifted_scenario() -> synthetic.Scenario:
    """bytes_out shifted by 1.5 and geo_velocity by 1.0 reference std from the start."""
    return synthetic.Scenario(
        drifts=(
            synthetic.Drift.sudden("bytes_out", 1.5, at=0.0),
            synthetic.Drift.sudden("geo_velocity", 1.0, at=0.0),
        )
    )


@functools.lru_cache(maxsize=4)
def population(scenario=None):
    """The events the registered test versions were trained on (conftest's ``trained``),
    optionally with a drift scenario applied. The generator draws each stage from its own
    stream, so a scenario changes only the drifted columns; undrifted windows taken from
    these events come from the reference population itself."""
    return synthetic.generate(6000, seed=7, scenario=scenario)


def log_window(
    version,
    *,
    rows: slice,
    start: datetime = T0,
    minutes: int = 60,
    scenario=None,
    labels: np.ndarray | None = None,
    tag: str = "",
) -> list[PredictionLog]:
    """Log the population's ``rows`` with event times spread evenly over one window."""
    events = population(scenario)
    X = events.X[rows]
    n = X.shape[0]
    step = timedelta(minutes=minutes) / max(n, 1)
    tag = tag or f"{start:%Y%m%d%H%M}-{rows.start}"
    entities, regions = events.entity[rows], events.geo_region[rows]
    return factories.predictions_log(
        version,
        [
            {
                "request_id": f"req-{tag}-{version.pk}-{i}",
                "entity": str(entities[i]),
                "attributes": {"geo_region": str(regions[i])},
                "created_at": start + step * i,
                "label": None if labels is None else int(labels[i]),
            }
            for i in range(n)
        ],
        X=X,
        batch_size=2000,
    )
