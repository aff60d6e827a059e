"""A/B part of the demo (idempotent): give threat-detector's experiment page something real.

- 1.1.0 approved and in staging: alex gives it 10 % of live traffic, which starts
  its experiment (hypothesis: no loss of precision on analyst-labelled incidents).
- 1.1.0 not approved yet (the demo's starting point): the experiment is recorded as
  planned, and 1.1.0 runs as a shadow. The week of traffic already in the prediction
  log is then re-scored by the real 1.1.0 booster and logged as its shadow
  predictions on the same incidents (what the SOC backend would have sent had 1.1.0
  been shadowing all week), so the page compares the two models on agreement and on
  the analysts' labels. Once alex approves 1.1.0, running this again starts the split.
"""

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction

from monitoring.models import PredictionLog
from registry.models import Experiment, MLModel, MLModelVersion, ShadowDeployment, TrafficSplit
from registry.services import version_load_booster
from registry.traffic import ExperimentPlan, experiment_plan, traffic_set

MODEL = "threat-detector"
CANDIDATE = "1.1.0"
APPROVER = "alex"
PLAN = ExperimentPlan(
    hypothesis="1.1.0, retrained without the travel-velocity proxy that raised APAC false "
    "positives, is at least as precise on analyst-labelled incidents as 1.0.0.",
    primary_metric="precision",
    minimum_sample_size=400,
)
BATCH = 5000


def build(*, stdout) -> None:
    model = MLModel.objects.filter(name=MODEL).first()
    candidate = model and model.versions.filter(version=CANDIDATE).first()
    champion = model and model.production_version()
    approver = get_user_model().objects.filter(username=APPROVER).first()
    if not (model and candidate and champion and approver):
        stdout.write(f"A/B demo skipped: {MODEL} {CANDIDATE}, a production version or alex missing")
        return
    if candidate.status != MLModelVersion.Status.STAGING:
        stdout.write(f"A/B demo: {candidate} is {candidate.status}; nothing to set up")
        return
    if candidate.is_approved():
        _start_split(model, candidate, approver, stdout)
    else:
        _plan_and_shadow(model, champion, candidate, approver, stdout)


def _start_split(model, candidate, approver, stdout) -> None:
    if Experiment.objects.filter(
        model=model, challenger=candidate, started_at__isnull=False
    ).exists():
        stdout.write(f"A/B demo: {candidate} already had its experiment")
        return
    split = TrafficSplit.objects.filter(model=model).first()
    shadows = [s for s in split.shadows.all() if s.pk != candidate.pk] if split else []
    traffic_set(
        model=model,
        challenger=candidate,
        challenger_bp=1000,
        shadows=shadows,
        actor=approver,
        notes="Demo: start the A/B test of the approved 1.1.0 at 10 %.",
        plan=PLAN,
    )
    stdout.write(f"A/B demo: {candidate} takes 10 % of traffic; experiment running")


def _plan_and_shadow(model, champion, candidate, approver, stdout) -> None:
    experiment_plan(model=model, challenger=candidate, plan=PLAN, actor=approver)
    split = TrafficSplit.objects.filter(model=model).first()
    if split is None or not split.shadows.filter(pk=candidate.pk).exists():
        traffic_set(
            model=model,
            challenger=None,
            challenger_bp=0,
            shadows=[candidate],
            actor=approver,
            notes="Demo: run 1.1.0 in shadow while it waits for approval.",
        )
    scored, since = _shadow_backfill(champion, candidate)
    if since is not None:
        # The shadow has been scoring since the first event it re-scored.
        ShadowDeployment.objects.filter(split__model=model, version=candidate).update(
            added_at=since
        )
    stdout.write(
        f"A/B demo: experiment planned, {candidate} in shadow; {scored} logged events "
        "re-scored by it"
    )


def _shadow_backfill(champion, candidate):
    """Score the champion's logged events with the candidate's booster as shadow rows."""
    if champion.feature_names != candidate.feature_names:
        return 0, None
    live = PredictionLog.objects.filter(version=champion, role="champion").exclude(incident_id="")
    done = set(
        PredictionLog.objects.filter(version=candidate, role="shadow").values_list(
            "incident_id", flat=True
        )
    )
    first = live.order_by("created_at").values_list("created_at", flat=True).first()
    rows = [r for r in live.order_by("pk").iterator(chunk_size=BATCH) if r.incident_id not in done]
    if not rows:
        return 0, first

    booster = version_load_booster(version=candidate)
    for start in range(0, len(rows), BATCH):
        _score_batch(booster, candidate, rows[start : start + BATCH])
    return len(rows), first


def _score_batch(booster, candidate, rows) -> None:
    import xgboost as xgb

    X = np.vstack([np.frombuffer(bytes(r.features), dtype="<f8") for r in rows])
    scores = booster.predict(xgb.DMatrix(X, feature_names=candidate.feature_names))
    shadow_rows = [
        PredictionLog(
            version=candidate,
            request_id=f"{r.request_id}:shadow:{candidate.version}"[:128],
            incident_id=r.incident_id,
            entity=r.entity,
            features=r.features,
            score=float(score),
            decision=bool(score >= candidate.decision_threshold),
            role="shadow",
            attributes=r.attributes,
            created_at=r.created_at,
        )
        for r, score in zip(rows, scores, strict=True)
    ]
    with transaction.atomic():
        PredictionLog.objects.bulk_create(shadow_rows, ignore_conflicts=True)
