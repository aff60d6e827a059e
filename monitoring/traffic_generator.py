"""Synthetic SOC traffic scored by registered versions: for demos, replays and load tests.

Events come from registry.synthetic (with its drift knobs); each event is scored by
the serving version and by any shadow versions, giving one prediction item per
version with a shared incident_id. Labels (the generator's ground truth) travel
beside the items so that a share of them can be posted as analyst verdicts.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import xgboost as xgb
from django.utils import timezone

from monitoring.feedback import feedback_record_many
from monitoring.ingest import predictions_ingest
from monitoring.models import PredictionLog
from registry import synthetic
from registry.models import MLModelVersion
from registry.services import version_load_booster

DEMO_DRIFTS = (
    synthetic.Drift.sudden("bytes_out", 1.5, at=0.5),
    synthetic.Drift.gradual("geo_velocity", 1.2, start=0.45, end=0.8),
)


@dataclass
class Traffic:
    items: list[dict]
    labels: list[int]


def parse_drift(spec: str) -> synthetic.Drift:
    """`feature:sudden:magnitude:at` or `feature:gradual:magnitude:start:end`."""
    parts = spec.split(":")
    try:
        if parts[1] == "sudden" and len(parts) == 4:
            return synthetic.Drift.sudden(parts[0], float(parts[2]), at=float(parts[3]))
        if parts[1] == "gradual" and len(parts) == 5:
            return synthetic.Drift.gradual(
                parts[0], float(parts[2]), float(parts[3]), float(parts[4])
            )
    except (IndexError, ValueError):
        pass
    raise ValueError(f"bad drift {spec!r}: use feature:sudden:mag:at or feature:gradual:mag:s:e")


def traffic_generate(
    *,
    serving: MLModelVersion,
    shadows=(),
    events: int,
    days: float = 7.0,
    end: datetime | None = None,
    seed: int = 0,
    drifts=(),
    region_proxy: float = 0.0,
) -> Traffic:
    """Generate events over `days` ending at `end` and score them with every version."""
    end = end or timezone.now()
    data = synthetic.generate(
        events,
        seed=seed,
        start=end - timedelta(days=days),
        days=days,
        scenario=synthetic.Scenario(drifts=tuple(drifts), region_proxy=region_proxy),
    )
    records = data.to_records()
    items, labels = [], []
    for version, role in [(serving, "champion"), *[(s, "shadow") for s in shadows]]:
        booster = version_load_booster(version=version)
        scores = booster.predict(xgb.DMatrix(data.X, feature_names=booster.feature_names))
        for record, score, label in zip(records, scores, data.y, strict=True):
            item = dict(
                record,
                model=version.model.name,
                version=version.version,
                score=float(score),
                role=role,
            )
            if role == "shadow":
                item["request_id"] = f"{record['request_id']}:{version.version}"
            items.append(item)
            labels.append(int(label))
    return Traffic(items=items, labels=labels)


def traffic_load(*, traffic: Traffic, batch: int = 5000, progress=None) -> int:
    """Ingest generated items in batches through the same validation as the API."""
    accepted = 0
    for start in range(0, len(traffic.items), batch):
        result = predictions_ingest(items=traffic.items[start : start + batch])
        accepted += result.accepted
        if progress:
            progress(min(start + batch, len(traffic.items)))
    return accepted


def verdicts_choose(
    traffic: Traffic, *, threshold: float, flagged_share: float, other_share: float, seed: int = 0
) -> dict[str, int]:
    """Incidents an analyst reviewed: most flagged ones, a few unflagged; label per incident."""
    rng = np.random.default_rng(seed)
    chosen: dict[str, int] = {}
    for item, label in zip(traffic.items, traffic.labels, strict=True):
        if item["role"] != "champion":
            continue
        flagged = item["score"] >= threshold
        if rng.random() < (flagged_share if flagged else other_share):
            chosen[item["incident_id"]] = label
    return chosen


def verdicts_record(*, verdicts: dict[str, int], user) -> int:
    """Record verdicts by incident (every version's row of the incident gets the label)."""
    recorded = 0
    for label in (0, 1):
        incidents = [i for i, v in verdicts.items() if v == label]
        for start in range(0, len(incidents), 2000):
            rows = list(
                PredictionLog.objects.filter(incident_id__in=incidents[start : start + 2000])
            )
            feedback_record_many(predictions=rows, label=label, user=user, note="analyst triage")
            recorded += len(rows)
    return recorded
