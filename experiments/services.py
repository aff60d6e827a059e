"""Experiment results from the prediction log and analyst labels, and the guardrail that
rolls a failing challenger's traffic back to the champion.

Primary metrics are proportions over labelled predictions of one arm:

- precision: flagged (decision true) and labelled rows; success = label 1;
- recall: rows labelled 1; success = flagged;
- accuracy: labelled rows; success = decision equals label.

Statistics are in experiments.ab_stats (Wilson, Newcombe, mixture SPRT).
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from core.audit import audit_record
from experiments import ab_stats
from monitoring.alerts import alert_raise
from monitoring.models import Alert, PredictionLog
from registry.models import BASIS_POINTS, Experiment, MLModel, ShadowDeployment, TrafficSplit
from registry.traffic import _mirror, _snapshot, experiment_end

METRIC_FILTERS = {
    # metric: (trials, successes)
    "precision": (Q(decision=True, label__isnull=False), Q(decision=True, label=1)),
    "recall": (Q(label=1), Q(label=1, decision=True)),
    "accuracy": (
        Q(label__isnull=False),
        Q(label=1, decision=True) | Q(label=0, decision=False),
    ),
}


@dataclass
class ArmResult:
    arm: str
    version: str
    predictions: int
    flagged: int
    labelled: int
    metric: ab_stats.Proportion


@dataclass
class ShadowResult:
    version: str
    since: datetime
    pairs: int
    agreement: ab_stats.Proportion
    labelled: int
    shadow_metric: ab_stats.Proportion
    champion_metric: ab_stats.Proportion


@dataclass
class ExperimentResults:
    experiment: Experiment
    start: datetime | None
    end: datetime
    arms: list[ArmResult]
    comparison: ab_stats.Comparison | None
    verdict: str
    shadows: list[ShadowResult] = field(default_factory=list)


def _arm(experiment, version, role, start, end) -> ArmResult:
    trials_q, success_q = METRIC_FILTERS[experiment.primary_metric]
    rows = PredictionLog.objects.filter(
        version=version, role=role, created_at__gte=start, created_at__lt=end
    )
    agg = rows.aggregate(
        n=Count("pk"),
        flagged=Count("pk", filter=Q(decision=True)),
        labelled=Count("pk", filter=Q(label__isnull=False)),
        trials=Count("pk", filter=trials_q),
        successes=Count("pk", filter=success_q),
    )
    return ArmResult(
        arm=role,
        version=version.version,
        predictions=agg["n"],
        flagged=agg["flagged"],
        labelled=agg["labelled"],
        metric=ab_stats.wilson(agg["successes"], agg["trials"]),
    )


def _verdict(experiment, arms, comparison) -> str:
    if comparison is None or not comparison.enough_data or comparison.msprt_p_value is None:
        return "collecting data"
    significant = comparison.msprt_p_value <= experiment.alpha
    if significant:
        better = "better" if comparison.difference > 0 else "worse"
        return f"challenger significantly {better} (always-valid p ≤ {experiment.alpha:g})"
    if min(a.metric.trials for a in arms) >= experiment.minimum_sample_size:
        return "no significant difference at the minimum sample size"
    return "no significant difference yet"


def experiment_results(*, experiment: Experiment, now: datetime | None = None) -> ExperimentResults:
    """Per-arm counts and metric with 95 % intervals, the difference and the sequential test."""
    end = experiment.ended_at or now or timezone.now()
    start = experiment.started_at
    arms, comparison = [], None
    if start is not None and experiment.champion_id:
        arms = [
            _arm(experiment, experiment.champion, "champion", start, end),
            _arm(experiment, experiment.challenger, "challenger", start, end),
        ]
        comparison = ab_stats.compare(arms[0].metric, arms[1].metric)
    return ExperimentResults(
        experiment=experiment,
        start=start,
        end=end,
        arms=arms,
        comparison=comparison,
        verdict=_verdict(experiment, arms, comparison) if arms else "not started",
    )


def shadow_results(*, model: MLModel, metric: str = "precision") -> list[ShadowResult]:
    """Each current shadow against the champion on the same incidents since it was added."""
    split = TrafficSplit.objects.filter(model=model).first()
    if split is None or split.champion_id is None:
        return []
    results = []
    for deployment in ShadowDeployment.objects.filter(split=split).select_related("version"):
        shadow_rows = PredictionLog.objects.filter(
            version=deployment.version, role="shadow", created_at__gte=deployment.added_at
        ).exclude(incident_id="")
        champion_rows = PredictionLog.objects.filter(
            version_id=split.champion_id,
            role="champion",
            incident_id__in=shadow_rows.values("incident_id"),
        )
        fields = ("incident_id", "decision", "label")
        live = {inc: (dec, label) for inc, dec, label in champion_rows.values_list(*fields)}
        results.append(_shadow_result(deployment, shadow_rows, live, metric))
    return results


def _shadow_result(deployment, shadow_rows, live, metric) -> ShadowResult:
    pairs = agree = labelled = 0
    counts = {"shadow": [0, 0], "champion": [0, 0]}  # [successes, trials]
    for incident, decision, label in shadow_rows.values_list("incident_id", "decision", "label"):
        if incident not in live:
            continue
        live_decision, live_label = live[incident]
        pairs += 1
        agree += decision == live_decision
        label = label if label is not None else live_label
        if label is None:
            continue
        labelled += 1
        for who, flagged in (("shadow", decision), ("champion", live_decision)):
            trial, success = _metric_point(metric, flagged, label)
            counts[who][0] += success
            counts[who][1] += trial
    return ShadowResult(
        version=deployment.version.version,
        since=deployment.added_at,
        pairs=pairs,
        agreement=ab_stats.wilson(agree, pairs),
        labelled=labelled,
        shadow_metric=ab_stats.wilson(*counts["shadow"]),
        champion_metric=ab_stats.wilson(*counts["champion"]),
    )


def _metric_point(metric: str, flagged: bool, label: int) -> tuple[int, int]:
    if metric == "precision":
        return int(flagged), int(flagged and label == 1)
    if metric == "recall":
        return int(label == 1), int(label == 1 and flagged)
    return 1, int(bool(flagged) == (label == 1))


def _critical_drift(experiment: Experiment) -> list[str]:
    alerts = Alert.objects.filter(
        version_id=experiment.challenger_id,
        kind="drift",
        severity=Alert.Severity.CRITICAL,
        status__in=Alert.ACTIVE,
    )
    return [a.title for a in alerts]


def _guardrail_reasons(experiment, results) -> list[str]:
    reasons = [f"open critical drift alert: {title}" for title in _critical_drift(experiment)]
    c = results.comparison
    if (
        c is not None
        and c.enough_data
        and c.msprt_p_value is not None
        and c.msprt_p_value <= experiment.alpha
        and c.difference < 0
    ):
        reasons.append(
            f"challenger significantly worse on {experiment.primary_metric}: "
            f"{c.difference:+.3f} (95 % CI {c.low:+.3f} to {c.high:+.3f}), "
            f"always-valid p = {c.msprt_p_value:.4f} ≤ {experiment.alpha:g}"
        )
    return reasons


@transaction.atomic
def experiment_guardrail(*, experiment_id: int) -> list[str]:
    """Check one running experiment; roll its challenger's traffic back when it fails.

    Idempotent: an experiment that is no longer running is left alone, so a
    redelivered task does nothing.
    """
    experiment = Experiment.objects.filter(pk=experiment_id).first()
    if experiment is None:
        return []
    MLModel.objects.select_for_update().get(pk=experiment.model_id)
    experiment = Experiment.objects.select_for_update().get(pk=experiment_id)
    if experiment.status != Experiment.Status.RUNNING:
        return []
    results = experiment_results(experiment=experiment)
    comparison = results.comparison
    p = comparison.msprt_p_value if comparison else None
    if p is not None and comparison is not None and comparison.enough_data:
        experiment.min_p_value = min(p, experiment.min_p_value or 1.0)
    experiment.last_checked_at = timezone.now()
    experiment.save(update_fields=["min_p_value", "last_checked_at"])
    reasons = _guardrail_reasons(experiment, results)
    if reasons:
        _roll_back(experiment, results, reasons)
    return reasons


def _roll_back(experiment: Experiment, results: ExperimentResults, reasons: list[str]) -> None:
    split = TrafficSplit.objects.select_for_update().get(model_id=experiment.model_id)
    before = _snapshot(split)
    if split.challenger_id == experiment.challenger_id:
        split.challenger, split.challenger_bp, split.champion_bp = None, 0, BASIS_POINTS
        split.revision += 1
        split.save()
        _mirror(split)
    reason = "; ".join(reasons)
    experiment_end(
        experiment=experiment,
        status=Experiment.Status.ROLLED_BACK,
        reason=f"guardrail: {reason}",
        actor=None,
    )
    arms = {a.arm: {"trials": a.metric.trials, "value": a.metric.value} for a in results.arms}
    audit_record(
        action="traffic.auto_rollback",
        obj=split,
        model_name=experiment.model.name,
        payload={"before": before, "after": _snapshot(split), "reasons": reasons, "arms": arms},
    )
    alert_raise(
        model=experiment.model,
        version=experiment.challenger,
        kind="experiment",
        severity="critical",
        dedupe_key=f"experiment:{experiment.pk}:rollback",
        title=f"{experiment.model.name} {experiment.challenger.version}: traffic rolled back "
        "to the champion",
        details={"experiment": experiment.pk, "reasons": reasons, "arms": arms},
    )


def experiment_history(*, model: MLModel):
    """Every experiment of a model with its events, newest first."""
    return (
        Experiment.objects.filter(model=model)
        .select_related("champion", "challenger", "created_by")
        .prefetch_related("events__actor")
    )
